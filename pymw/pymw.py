"""PyMW 0.4's core names: ``PyMW_Master``, ``PyMW_MapReduce`` and the exceptions.

``PyMW_Master`` is a :class:`boinc_pymw.Master` (so ``submit``/``map`` work
on it too) that speaks PyMW's dialect where PyMW differs: misuse of task
handles raises ``TaskException``, interfaces come from
``pymw.interfaces``, and ``get_progress`` takes tasks. Unlike PyMW, task
functions travel by value (no generated scripts, no ``tasks/`` directory)
and results come back without files.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from concurrent.futures import as_completed
from typing import Callable, Optional

from boinc_pymw.backends.base import WorkItem
from boinc_pymw.master import Master, Task, TaskLookupError

from ._errors import InterfaceException, TaskException
from .interfaces import Interface
from .interfaces.generic import GenericInterface

__all__ = ["PyMW_Master", "PyMW_MapReduce", "PyMW_Task", "TaskException",
           "InterfaceException"]

#: PyMW's task handle; ``get_total_time``, ``get_execution_time``, ``get_progress``
PyMW_Task = Task


class PyMW_Master(Master):
    """PyMW's master: ``PyMW_Master(interface=interfaces.get_interface(options))``.

    ``interface=None`` is PyMW's default, the generic interface with one
    worker. ``loglevel`` configures logging as PyMW did. ``delete_files`` is
    accepted: no task files are written here, and each task's directory
    (``data_files``) is always removed. ``scheduler_func`` cannot be honoured
    (back ends place tasks themselves) and gives a warning.
    """

    def __init__(self, interface: Optional[Interface] = None, loglevel=logging.CRITICAL,
                 delete_files: bool = True, scheduler_func: Optional[Callable] = None):
        logging.basicConfig(level=loglevel, format="%(asctime)s %(levelname)s %(message)s")
        if interface is None:
            interface = GenericInterface()
        if not isinstance(interface, Interface):
            raise InterfaceException(
                f"{interface!r} is not an interface from pymw.interfaces",
                "PyMW interface objects of your own (with execute_task) cannot run here; "
                "write a boinc_pymw.backends.base.Backend instead (see the README)")
        if scheduler_func is not None:
            warnings.warn("scheduler_func is ignored by boinc-pymw: each back end places "
                          "tasks on its workers itself", stacklevel=2)
        self.delete_files = delete_files
        self.pymw_interface = interface
        super().__init__(interface.backend, workers=interface.num_workers, **interface.options)

    def submit_task(self, executable, input_data=None, modules=(), dep_funcs=(), data_files=(),
                    input_from_file=False) -> Task:
        """Run ``executable(*input_data)``; returns the task for ``get_result``."""
        if isinstance(executable, str):
            raise TaskException(
                f"executable {executable!r}: script executables are not supported; "
                f"pass the function to run")
        if not callable(executable):
            raise TaskException("Executable must be a filename or function")
        if input_data is not None and not isinstance(input_data, (tuple, list)):
            raise TaskException(f"input_data must be a tuple of arguments, "
                                f"not {type(input_data).__name__}")
        return super().submit_task(executable, input_data, modules=modules,
                                   dep_funcs=dep_funcs, data_files=tuple(data_files),
                                   input_from_file=input_from_file)

    def get_result(self, task=None, blocking=True, timeout=None):
        """``(task, result)``; a task's own exception is raised here."""
        if isinstance(task, (list, tuple)):
            tasks = list(task)
        elif task is None:
            tasks = []
        else:
            tasks = [task]
        if not self._tasks:
            raise TaskException("No tasks have been submitted")
        for t in tasks:
            if not isinstance(t, Task):
                raise TaskException("Function requires either a task, a list of tasks, or None")
        try:
            return super().get_result(tasks or None, blocking=blocking, timeout=timeout)
        except TaskLookupError as exc:
            raise TaskException(str(exc)) from None

    def get_progress(self, task) -> list:
        tasks = list(task) if isinstance(task, (list, tuple)) else [task]
        for t in tasks:
            if not isinstance(t, Task) or t not in self._tasks:
                raise TaskException("Task has not been submitted")
        return super().get_progress(tasks)


class PyMW_MapReduce:
    """PyMW's MapReduce on a :class:`PyMW_Master`.

    ``submit_task_mapreduce`` splits ``input_data`` into ``num_worker``
    parts, maps each, then reduces: each map result on its own
    (``red_worker=-1``) or all map results joined and split into
    ``red_worker`` parts. Its task's result is the list of reduce results
    (in the order they finished, as in PyMW). With ``file_input=True``,
    ``input_data`` lists files (``[path, ...]`` entries) and each map task
    gets ``[path, start, end]`` byte ranges of about equal size.
    """

    def __init__(self, master: PyMW_Master):
        self._master = master

    @staticmethod
    def _data_split(data, num: int) -> list:
        """``num`` consecutive parts; the first ``len % num`` one item longer."""
        size, extra = divmod(len(data), num)
        parts, start = [], 0
        for i in range(num):
            end = start + size + (1 if i < extra else 0)
            parts.append(data[start:end])
            start = end
        return parts

    @staticmethod
    def _file_split(files, num: int) -> list:
        """Byte ranges ``[path, start, end]`` over ``files``, ``num`` groups."""
        paths = [f[0] if isinstance(f, (list, tuple)) else f for f in files]
        sizes = [os.path.getsize(p) for p in paths]
        total = sum(sizes)
        quota, extra = divmod(total, num)
        targets = [quota + (1 if i < extra else 0) for i in range(num)]
        groups, group, need = [], [], targets[0] if targets else 0
        for path, size in zip(paths, sizes):
            pos = 0
            while pos < size:
                take = min(size - pos, need)
                group.append([path, pos, pos + take])
                pos += take
                need -= take
                if need == 0 and len(groups) < num - 1:
                    groups.append(group)
                    group, need = [], targets[len(groups)]
        groups.append(group)
        while len(groups) < num:
            groups.append([])
        return groups

    def submit_task_mapreduce(self, exec_map, exec_reduce, num_worker=1, input_data=None,
                              modules=(), dep_funcs=(), red_worker=-1, file_input=False) -> Task:
        if num_worker < 1:
            raise TaskException("num_worker must be at least 1")
        if red_worker != -1 and red_worker < 1:
            raise TaskException("red_worker must be -1 or at least 1")
        name = f"{getattr(exec_map, '__name__', 'map')}_{getattr(exec_reduce, '__name__', 'reduce')}_MR"
        data = list(input_data or ())
        parts = self._file_split(data, num_worker) if file_input else \
            self._data_split(data, num_worker)
        item = WorkItem(self.submit_task_mapreduce, (name,))
        task = Task(name, (), item)
        self._master._track(task)
        item.mark_started()
        thread = threading.Thread(
            target=self._run, name=f"pymw-mapreduce-{name}", daemon=True,
            args=(item, exec_map, exec_reduce, parts, red_worker))
        thread.start()
        return task

    def _run(self, item: WorkItem, exec_map, exec_reduce, parts, red_worker) -> None:
        # Plain futures, not submit_task: the user's get_result() must not
        # pick up the map and reduce steps.
        master = self._master
        try:
            maps = [master.submit(exec_map, part) for part in parts]
            reduces, joined = [], []
            for future in as_completed(maps):
                if red_worker == -1:
                    reduces.append(master.submit(exec_reduce, future.result()))
                else:
                    joined += future.result()
            if red_worker != -1:
                reduces = [master.submit(exec_reduce, part)
                           for part in self._data_split(joined, red_worker)]
            results = [future.result() for future in as_completed(reduces)]
        except BaseException as exc:
            item.set_exception(exc)
        else:
            item.set_result(results)
