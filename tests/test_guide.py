"""The "add your own imaging system" guide runs as written and its example works."""

import re
from pathlib import Path

import numpy as np

GUIDE = Path(__file__).parents[1] / "docs" / "add-your-own-system.md"


def test_guide_motion_blur_example_recovers_a_sharper_scene():
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.S)
    assert len(blocks) >= 2, "the guide should hold the system and its use"
    namespace: dict = {"__name__": "guide"}
    for block in blocks:
        exec(compile(block, str(GUIDE), "exec"), namespace)
    from nstm.metrics import psnr

    blurred = psnr(namespace["blurred"], namespace["truth"], border=4)
    sharp = psnr(namespace["sharp"], namespace["truth"], border=4)
    # Deblurring must be clearly better than handing back the blurred frames.
    assert sharp > blurred + 3.0, (sharp, blurred)


def test_motion_blur_validates_inputs():
    namespace: dict = {"__name__": "guide"}
    exec(re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.S)[0], namespace)
    blur = namespace["MotionBlur"]
    import pytest

    with pytest.raises(ValueError, match="frames"):
        blur(np.zeros((4, 4)), [0.0], exposure=0.1)
    with pytest.raises(ValueError, match="exposure"):
        blur(np.zeros((1, 4, 4)), [0.99], exposure=0.5)
