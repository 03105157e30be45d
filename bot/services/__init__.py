"""Load → decide → persist → effects. Each decision is one transaction."""
