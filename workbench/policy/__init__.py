"""Retraining policies as code: the policy file (``schema``), the scheduler that runs its
jobs (``scheduler``, APScheduler 3.x on the platform's database) and the retrain proposals a
trigger or the retrain schedule makes (``proposals``: retrain, judge on the same rows,
promote by the rule, record, announce).

Imports are lazy: the command line imports what a command needs."""
