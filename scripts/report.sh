#!/bin/sh
# Demo handler for `report` jobs: the job JSON arrives on stdin; exit 0 means done.
job=$(cat)
sleep 0.1
echo "report: built report for job $JOB_ID from queue $JOB_QUEUE ($*)"
