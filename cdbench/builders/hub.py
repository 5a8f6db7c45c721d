"""Publishing a built folder to the Hugging Face Hub: a thin call on the same folder."""

from __future__ import annotations

import os
from pathlib import Path

from cdbench.data.dataset import read_build_record


def push_to_hub(folder: str | os.PathLike, repo_id: str, *, private: bool = False, token: str | None = None) -> str:
    """Create the dataset repo (if needed) and upload the built folder unchanged; returns its URL.

    ``datasets.load_dataset(repo_id, "scores")`` then reads the same card and files.
    """
    from huggingface_hub import HfApi

    folder = Path(folder)
    read_build_record(folder)  # refuse to publish a folder that is not a complete build
    api = HfApi(token=token)
    url = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="dataset",
                      commit_message="Upload dataset built by cdbench")
    return str(url)
