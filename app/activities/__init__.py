"""Activities for reports (活动: lectures, classes, games, workshops) and challenges (打卡挑战) with streaks."""
