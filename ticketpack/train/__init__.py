"""The trainer: options, the loop, schedules, checkpoints, run records, recipes."""
