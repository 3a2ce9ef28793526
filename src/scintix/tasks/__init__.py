"""Task kinds: one object per kind owns loss, activation, targets, thresholds, evaluation and decisions.

>>> get_task("binary").columns(2)
[1]
"""

from __future__ import annotations

from .base import Task
from .classification import (
    BinaryTask,
    ClassificationTask,
    MulticlassTask,
    MultilabelTask,
)
from .segmentation import SegmentationTask

__all__ = ["Task", "TASKS", "TASK_NAMES", "get_task", "ClassificationTask", "BinaryTask", "MulticlassTask", "MultilabelTask", "SegmentationTask"]

TASKS: dict[str, type[Task]] = {t.name: t for t in (BinaryTask, MulticlassTask, MultilabelTask, SegmentationTask)}
TASK_NAMES = tuple(TASKS)


def get_task(task: str | Task) -> Task:
    """The task object for a name (a task passes through)."""
    if isinstance(task, Task):
        return task
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; choose from {', '.join(TASK_NAMES)}")
    return TASKS[task]()
