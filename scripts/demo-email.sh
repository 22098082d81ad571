#!/bin/sh
# Demo handler for `email` jobs until the SMTP handler lands: reads the job JSON on stdin
# and pretends to send it.
job=$(cat)
sleep "${DEMO_EMAIL_DELAY:-0.05}"
echo "demo-email: sent $JOB_PRIORITY mail for job $JOB_ID (attempt $JOB_ATTEMPT): $job"
