"""Every write of the leaderboard, as `<entity>_<action>(*, ...)` functions."""
