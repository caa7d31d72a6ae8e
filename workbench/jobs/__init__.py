"""Jobs: parameterized notebooks run by papermill, tracked as MLflow runs."""
from workbench.jobs.executors import ExecutorRegistry, LocalExecutor, executors
from workbench.jobs.params import check_parameters, declared_parameters
from workbench.jobs.runner import run_job
from workbench.jobs.spec import Executor, JobResult, JobSpec, JobTimeout, PreparedJob, Progress
from workbench.jobs.tracking import BackgroundTracker, ClientTracker, JobTracker, Settlement

__all__ = [
    "BackgroundTracker",
    "ClientTracker",
    "Executor",
    "ExecutorRegistry",
    "JobResult",
    "JobSpec",
    "JobTimeout",
    "JobTracker",
    "LocalExecutor",
    "PreparedJob",
    "Progress",
    "Settlement",
    "check_parameters",
    "declared_parameters",
    "executors",
    "run_job",
]
