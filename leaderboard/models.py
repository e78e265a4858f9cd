"""Leaderboard entries, boosts, game sessions, scores and prize pools."""
