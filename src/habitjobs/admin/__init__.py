"""The operator's API: queues, jobs, failed jobs and their stack traces, retries."""
