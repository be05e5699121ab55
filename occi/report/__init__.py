"""Stage 5: the leaderboard, the model card and publishing."""
