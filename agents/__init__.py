"""Policies that act in hcgym environments (PPO, static, rule-based, synthesized-view agents)."""
