"""The pure core: plans, rollouts and their decisions. No I/O, no clock."""
