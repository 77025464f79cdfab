"""The README's Python examples run as written, and its set-up commands are the ones CI uses."""
import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_self_contained_examples_run():
    # Blocks that start with imports are complete programs; the others are fragments.
    complete = [block for block in python_blocks() if block.lstrip().startswith(("import", "from"))]
    assert len(complete) >= 2
    for block in complete:
        namespace = {}
        exec(compile(block, str(README), "exec"), namespace)   # raises on any error
        if "report" in namespace:
            assert namespace["report"].passed


def test_each_setup_command_is_one_line_that_installs_and_runs():
    text = README.read_text()
    for marker, job in (("main-command", "se-numpy demo"), ("test-command", "pytest")):
        body = re.search(rf"<!-- {marker} -->\n```\n(.*?)```\n<!-- /{marker} -->", text, re.S)
        assert body, marker
        lines = [line for line in body.group(1).splitlines() if line.strip()]
        assert len(lines) == 1 and "pip install" in lines[0] and job in lines[0]
