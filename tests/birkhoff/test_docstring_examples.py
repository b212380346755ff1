"""Every public function of ``birkhoff`` has an ``Examples`` section, and its examples run as written."""

import doctest
import inspect

import pytest

import birkhoff

FUNCTIONS = [name for name in birkhoff.__all__ if inspect.isfunction(getattr(birkhoff, name))]


def test_the_list_is_the_public_api():
    assert len(FUNCTIONS) >= 20 and "sinkhorn" in FUNCTIONS and "certify" in FUNCTIONS


@pytest.mark.parametrize("name", FUNCTIONS)
def test_examples_run_as_written(name):
    fn = getattr(birkhoff, name)
    assert "\n    Examples\n    --------\n" in (fn.__doc__ or ""), f"{name} has no Examples section"
    finder = doctest.DocTestFinder(recurse=False)
    tests = finder.find(fn, name, globs={k: getattr(birkhoff, k) for k in birkhoff.__all__})
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    for test in tests:
        runner.run(test)
    assert runner.tries > 0 and runner.failures == 0, f"{name}: {runner.failures} of {runner.tries} examples failed"
