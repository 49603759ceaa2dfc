"""Run ``jupyter-book build`` with Sphinx reading (and executing) the pages in parallel.

Jupyter Book 1's command line has no option for Sphinx's parallel reading (``sphinx-build -j``),
so this runs the same command with the number of jobs set: the notebooks are executed by that
many processes at once instead of one after the other. Results that two pages need are computed
once (``bnguide.cache`` makes the second page wait for the first). The extensions the book loads
all declare that they are parallel-safe (``bnguide_site`` declares it for the two that do not
say, see ``PARALLEL_SAFE_UNDECLARED`` there); if one does not, Sphinx warns and ``-W`` stops the
build.

Usage (what ``make book`` runs)::

    python book/_ext/build_book.py [--jobs N] <arguments of jupyter-book build>

``--jobs`` defaults to the CPUs this process may use; ``--jobs 1`` is plain ``jupyter-book build``.
"""

from __future__ import annotations

import functools
import os
import sys


def _reporting_execution(execute):
    """``execute`` (jupyter-cache's single_nb_execution), printing a failure's own traceback.

    In a parallel build Sphinx reports only "ExecutionError: <notebook>" for a page whose
    notebook failed: the log of the process that read it is lost. This prints the failing cell
    and its traceback to stderr as soon as it happens.
    """

    @functools.wraps(execute)
    def run(*args, **kwargs):
        result = execute(*args, **kwargs)
        if result.err is not None:
            print(f"build_book.py: a notebook failed:\n{result.exc_string}", file=sys.stderr)
        return result

    return run


def main(argv: list[str]) -> None:
    jobs = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if argv[:1] == ["--jobs"]:
        if len(argv) < 2 or not argv[1].isdigit() or int(argv[1]) < 1:
            sys.exit("build_book.py: --jobs needs a positive whole number, e.g. --jobs 2.")
        jobs, argv = int(argv[1]), argv[2:]
    from jupyter_book import sphinx
    from jupyter_book.cli.main import main as jupyter_book_cli
    from myst_nb.core.execute import direct

    direct.single_nb_execution = _reporting_execution(direct.single_nb_execution)

    # `jupyter-book build` imports build_sphinx when it runs: give it the number of jobs.
    sphinx.build_sphinx = functools.partial(sphinx.build_sphinx, jobs=jobs or 1)
    jupyter_book_cli(["build", *argv])


if __name__ == "__main__":
    main(sys.argv[1:])
