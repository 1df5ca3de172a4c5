"""Prompts a checkpoint was not trained on: one warning per distinct unknown prompt.

openpi's protocol carries the instruction in each observation (``obs["prompt"]``, optional), so a
served policy can be asked for any task. A checkpoint lists the tasks of the episodes it was
trained on (``config.json`` ``tasks``, the ``tasks`` of the server's handshake metadata); a prompt
outside that list is out of distribution and whatever the policy does with it is unmeasured.
Serving does not refuse it (a lab may try new instructions on purpose) but says so, once per
distinct prompt:

* ``hvla serve`` wraps the policy in :class:`PromptCheckedPolicy`: one line on stderr and one
  ``prompt_warning`` line in the inference log the first time a prompt arrives that is not a
  training task;
* ``hvla deploy`` wraps the client's ``infer`` with :func:`checked_infer` against the ``tasks`` of
  the server's metadata: one line on stderr and a ``prompt_warning`` line in the robot safety log;
* the evaluation's loopback server logs the same ``prompt_warning`` lines in its inference log, and
  the eval report classifies trials with :func:`is_training_task`.

Prompts are compared after :func:`normalize_prompt` (case-folded, whitespace collapsed), so
"Touch the blue cube  with the left hand" is the training task "touch the blue cube with the left
hand". The nearest training task is the one with the highest :class:`difflib.SequenceMatcher`
ratio (always named, however far). At most :data:`MAX_REMEMBERED` distinct unknown prompts are
remembered (a client cannot grow the server's memory without bound); past that, one last warning
says further unknown prompts are not reported.
"""

from __future__ import annotations

import difflib
import threading
from typing import Any, Callable, Iterable, Mapping

#: distinct unknown prompts remembered (and warned about) per watch.
MAX_REMEMBERED = 1024
#: longest prompt quoted in a warning, characters (longer ones are cut with "…").
MAX_QUOTED = 200


def normalize_prompt(prompt: str) -> str:
    """``prompt`` case-folded with runs of whitespace collapsed to one space (the comparison form)."""
    return " ".join(str(prompt).split()).casefold()


def is_training_task(prompt: str, training_tasks: Iterable[str]) -> bool:
    """Whether ``prompt`` is one of ``training_tasks`` (compared by :func:`normalize_prompt`)."""
    return normalize_prompt(prompt) in {normalize_prompt(t) for t in training_tasks}


def nearest_task(prompt: str, training_tasks: Iterable[str]) -> str | None:
    """The training task closest to ``prompt`` (highest ``difflib.SequenceMatcher`` ratio of the
    normalized strings, ties broken alphabetically); None when there are no training tasks."""
    tasks = sorted({str(t) for t in training_tasks})
    if not tasks:
        return None
    p = normalize_prompt(prompt)
    return min(tasks, key=lambda t: (-difflib.SequenceMatcher(None, p, normalize_prompt(t)).ratio(), t))


def _quoted(text: str) -> str:
    return repr(text if len(text) <= MAX_QUOTED else text[:MAX_QUOTED] + "…")


class PromptWatch:
    """Remembers the unknown prompts it has warned about; thread-safe.

    Args:
        training_tasks: the checkpoint's training tasks (its ``tasks``); empty means unknown: no
            prompt is checked (:attr:`active` is False).
        prompt_used: whether the policy reads the prompt; when False the warning adds that it acts
            as trained whatever the prompt asks.
        max_remembered: distinct unknown prompts warned about before falling silent.
    """

    def __init__(self, training_tasks: Iterable[str] | None, *, prompt_used: bool = True,
                 max_remembered: int = MAX_REMEMBERED):
        self.training_tasks = sorted({str(t) for t in (training_tasks or [])})
        self._known = {normalize_prompt(t) for t in self.training_tasks}
        self.prompt_used = bool(prompt_used)
        self.max_remembered = int(max_remembered)
        self._warned: set[str] = set()
        self._silenced = False
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        """Whether prompts are checked (the checkpoint listed its training tasks)."""
        return bool(self._known)

    def check(self, prompt: Any) -> dict[str, Any] | None:
        """A warning the first time ``prompt`` is seen and is not a training task, else None.

        Args:
            prompt: the observation's ``prompt``; None (no prompt) or a non-string is not checked.

        Returns:
            ``{"prompt", "nearest", "message"}`` where ``message`` is one line such as
            ``prompt 'touch the red cube with the left hand' is not among the checkpoint's 2 training
            tasks (nearest: 'touch the blue cube with the left hand'); its success is unmeasured``;
            None when the prompt is known, was already reported, or the watch is inactive/silenced.
        """
        if not self._known or not isinstance(prompt, str):
            return None
        norm = normalize_prompt(prompt)
        if norm in self._known:
            return None
        with self._lock:
            if norm in self._warned or self._silenced:
                return None
            if len(self._warned) >= self.max_remembered:
                self._silenced = True
                return {"prompt": None, "nearest": None,
                        "message": f"more than {self.max_remembered} distinct prompts that are not training tasks; "
                                   "further ones are not reported"}
            self._warned.add(norm)
        nearest = nearest_task(prompt, self.training_tasks)
        n = len(self.training_tasks)
        message = (f"prompt {_quoted(prompt)} is not among the checkpoint's {n} training task{'s' if n != 1 else ''} "
                   f"(nearest: {_quoted(nearest or '')}); it is out of distribution and its success is unmeasured")
        if not self.prompt_used:
            message += " (this policy does not read the prompt: it acts as trained, whatever the prompt asks)"
        return {"prompt": prompt, "nearest": nearest, "message": message}


def checked_infer(infer: Callable[[dict], Mapping[str, Any]], watch: PromptWatch,
                  on_warning: Callable[[dict[str, Any]], None]) -> Callable[[dict], Mapping[str, Any]]:
    """``infer`` that first passes the observation's ``prompt`` to ``watch`` and calls
    ``on_warning(warning)`` (:meth:`PromptWatch.check`'s dict) before the query when it warns."""
    if not watch.active:
        return infer

    def wrapped(obs: dict) -> Mapping[str, Any]:
        warning = watch.check(obs.get("prompt")) if isinstance(obs, Mapping) else None
        if warning is not None:
            on_warning(warning)
        return infer(obs)

    return wrapped


class PromptCheckedPolicy:
    """A servable policy (``metadata`` + ``infer``) that reports unknown prompts, then infers.

    Args:
        policy: the policy served (its ``metadata`` ``tasks`` / ``prompt_used`` define the watch).
        on_warning: called with :meth:`PromptWatch.check`'s dict, once per distinct unknown prompt,
            on the server's inference thread before the query.
    """

    def __init__(self, policy: Any, on_warning: Callable[[dict[str, Any]], None]):
        self._policy = policy
        md = policy.metadata
        self.watch = PromptWatch(md.get("tasks"), prompt_used=bool(md.get("prompt_used", True)))
        self.infer = checked_infer(policy.infer, self.watch, on_warning)

    @property
    def metadata(self) -> Mapping[str, Any]:
        """The wrapped policy's metadata."""
        return self._policy.metadata
