"""An evaluate module folder: evaluate.load(cdbench.hf_evaluate.module_path("cd_correlation"))."""
