"""Test-session set-up: datasets built by the tests go to a fresh folder, not ~/tensorflow_datasets
(subprocesses started by tests inherit it)."""

import os
import tempfile

os.environ.setdefault("TFDS_DATA_DIR", tempfile.mkdtemp(prefix="hjepa_tfds_"))
