"""The five jobs, one package each (estimator or model, its files, its CLI); a job never imports another job."""
