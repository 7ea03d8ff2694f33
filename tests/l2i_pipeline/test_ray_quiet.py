"""Issue 25 item 18: a successful Ray run prints only the pipeline's own lines: Ray Data's INFO lines and
the routine notices in QUIET are off (warnings stay; -v, i.e. DEBUG, shows everything)."""
import logging

from l2i_pipeline.core.rayutil import QUIET, quiet_ray


def test_routine_ray_lines_are_off_and_warnings_stay():
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.INFO)
    try:
        quiet_ray()
        executor = logging.getLogger("ray.data._internal.execution.streaming_executor")
        assert not executor.isEnabledFor(logging.INFO) and executor.isEnabledFor(logging.WARNING)
        for name, text in QUIET.items():
            logger = logging.getLogger(name)
            routine = logger.makeRecord(name, logging.WARNING, __file__, 1, f"{text} for this Ray cluster.", (), None)
            other = logger.makeRecord(name, logging.WARNING, __file__, 1, "something else", (), None)
            assert not logger.filter(routine) and logger.filter(other)
    finally:
        root.setLevel(level)
        logging.getLogger("ray.data").setLevel(logging.NOTSET)
        for name in QUIET:
            logging.getLogger(name).filters.clear()
