"""What Airflow makes of a folder of DAG files, as JSON in the file argv[4]: the import errors, and
for each DAG its schedule, time zone, bounds, run limits and retries, and for a cron the
next run times Airflow's own timetable computes after an instant (argv[2], RFC 3339).

Used by tests/airflow.rs with the Airflow of the test script's virtualenv.
"""

import json
import sys

import pendulum
from airflow.dag_processing.dagbag import DagBag
from airflow.timetables.trigger import CronTriggerTimetable

folder, after, count, report = sys.argv[1], pendulum.parse(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
bag = DagBag(dag_folder=folder)
out = {"errors": {path: str(error) for path, error in bag.import_errors.items()}, "dags": {}}
for dag_id, dag in bag.dags.items():
    table = dag.timetable
    task = dag.tasks[0]
    facts = {
        "timetable": type(table).__name__,
        "timezone": str(dag.timezone),
        "start": dag.start_date.isoformat() if dag.start_date else None,
        "end": dag.end_date.isoformat() if dag.end_date else None,
        "catchup": dag.catchup,
        "max_active_runs": dag.max_active_runs,
        "max_consecutive_failed_dag_runs": dag.max_consecutive_failed_dag_runs,
        "tasks": [t.task_id for t in dag.tasks],
        "operator": type(task).__name__,
        "retries": task.retries,
        "retry_delay_seconds": task.retry_delay.total_seconds(),
        "retry_exponential_backoff": bool(task.retry_exponential_backoff),
        "bash_command": getattr(task, "bash_command", None),
    }
    if hasattr(table, "delta"):
        facts["every_seconds"] = table.delta.total_seconds()
    if hasattr(table, "expression"):
        facts["cron"] = table.expression
        # The scheduler's own timetable for that expression and zone.
        core = CronTriggerTimetable(table.expression, timezone=str(table.timezone))
        at, runs = after.subtract(seconds=1), []
        for _ in range(count):
            at = core._get_next(at)
            runs.append(at.in_timezone("UTC").isoformat())
        facts["next"] = runs
    out["dags"][dag_id] = facts
with open(report, "w") as f:
    json.dump(out, f, indent=1)
