"""Imports: the command line loads MONAI without Hugging Face transformers (~4 s of start-up), which still imports
afterwards; inference, explanation and serving load nothing of the training package (lower layers never import higher)."""

from __future__ import annotations

import subprocess
import sys
from importlib.util import find_spec

import pytest

CHILD = """
import sys
from scintix.cli.__main__ import main
assert main(["recipes"]) == 0 and "monai" not in sys.modules  # a command without MONAI does not import it
import monai.networks.nets
assert "transformers" not in sys.modules, "MONAI imported transformers"
assert monai.networks.nets.transchex.transformers[1] is False  # what MONAI recorded: absent
assert not any(type(f).__name__ == "_MonaiWithoutTransformers" for f in sys.meta_path)  # one shot
import transformers
from transformers import BertConfig
assert BertConfig(hidden_size=8, num_attention_heads=2).hidden_size == 8
import scintix.explain.run, scintix.inference.predict, scintix.serve.service  # noqa: E401
assert not [m for m in sys.modules if m.startswith("scintix.training")], [m for m in sys.modules if m.startswith("scintix.training")]
print("ok")
"""


@pytest.mark.skipif(find_spec("transformers") is None, reason="transformers not installed")
def test_the_cli_imports_monai_without_transformers_and_inference_without_training():
    p = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and p.stdout.strip().endswith("ok"), p.stderr[-2000:]
