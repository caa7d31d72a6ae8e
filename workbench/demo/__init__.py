"""Demo material: synthetic churn data to try the workbench on, generated locally."""
