"""The operators' web dashboard at ``/admin``: queues, jobs, failures and what the jobs did."""
