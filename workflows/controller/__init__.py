"""The retraining controller (`recsys controller`): watch drift, schedule and data volume,
retrain, bless, run a canary, promote or roll back, and log every decision with its
evidence."""
