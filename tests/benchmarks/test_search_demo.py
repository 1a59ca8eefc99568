"""The demo-search benchmark refuses bad command lines before it searches anything."""

from __future__ import annotations

import pytest

from benchmarks import search_demo


@pytest.mark.parametrize("argv, message", [
    (["--trained-steps", "-5"], "'-5' is not a number of training steps; write e.g. 3000"),
    (["--trained-steps", "many"], "'many' is not a number of training steps"),
    (["--trained-steps", "3000", "--reuse-records", "no/such/folder"],
     "--reuse-records no/such/folder: no trainings/ folder of recorded trainings there"),
])
def test_bad_command_lines_are_refused(argv, message, capsys):
    with pytest.raises(SystemExit) as refused:
        search_demo.main(argv)
    assert refused.value.code == 2 and message in capsys.readouterr().err
