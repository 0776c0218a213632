"""The audit log (HIPAA 164.312(b)): every access attempt to a patient's data by anyone else."""
