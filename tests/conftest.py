import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Deploys, fixtures and group_data all assume the repository root as working directory.
os.chdir(ROOT)
