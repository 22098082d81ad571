#!/bin/sh
# Demo handler for `email` jobs until the SMTP handler lands: reads the job JSON on stdin and
# pretends to send it. Its output goes to the worker's stderr.
job=$(cat)
[ -n "$DEMO_ORDER_FILE" ] && echo "$JOB_PRIORITY $JOB_ID" >> "$DEMO_ORDER_FILE"
sleep "${DEMO_EMAIL_DELAY:-0.05}"
echo "demo-email: sent $JOB_PRIORITY mail for job $JOB_ID (attempt $JOB_ATTEMPT): $job"
