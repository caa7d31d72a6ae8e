"""Jobs: parameterized notebooks run by papermill, tracked as MLflow runs."""
from workbench.jobs.executors import Executor, ExecutorRegistry, LocalExecutor, executors
from workbench.jobs.params import check_parameters, declared_parameters
from workbench.jobs.runner import run_job
from workbench.jobs.spec import JobResult, JobSpec, PreparedJob
from workbench.jobs.tracking import BackgroundTracker, ClientTracker, JobTracker

__all__ = [
    "BackgroundTracker",
    "ClientTracker",
    "Executor",
    "ExecutorRegistry",
    "JobResult",
    "JobSpec",
    "JobTracker",
    "LocalExecutor",
    "PreparedJob",
    "check_parameters",
    "declared_parameters",
    "executors",
    "run_job",
]
