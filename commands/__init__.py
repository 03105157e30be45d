"""The `/rollout` slash command: grammar, permissions and one handler per verb."""
