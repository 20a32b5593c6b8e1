import sys
from pathlib import Path

# Tests import the package from the source tree, as the node pack and the vLLM plugin do.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
