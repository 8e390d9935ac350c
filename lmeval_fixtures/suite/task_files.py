"""``--task-file FILE``: a multiple-choice task declared in a small YAML file.

Two formats, told apart by their keys. Ours (``name``, ``data``, ``template``, ...) is a
``Task`` declaration written as YAML. lm-evaluation-harness's task YAML (``task``,
``doc_to_text``, ..., ``include``) is read when it is of ``output_type: multiple_choice`` over
local files (``dataset_path: json``, ``csv``, ``parquet`` or ``arrow`` with
``dataset_kwargs.data_files``), so that its own files, pointed at local data by a small file
that includes them, give its prompts. Every feature it has that we do not run (``!function``,
``process_docs``, ``filter_list``, other output types and metrics, ...) is refused with one line
naming the key: a task that silently scored something else would be worse than none.

Relative paths (data files, includes) are relative to the YAML file that names them. The
task file, what it includes and every data file are fingerprinted into the record, so two
runs whose prompts or data differ are never ranked together.
"""

from __future__ import annotations

import ast
import glob
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..core.errors import DataError, RowError, TaskFileError
from ..core.files import special_file_message
from .doc_prompts import DocPrompt, FormatRules, JinjaRules, TaskFileRows, choice_list, table_builder
from .jinja_sandbox import TemplateLimit, render
from .jinja_sandbox import template_problem as jinja_problem
from .sources import read_text_file
from .task_yaml import MAX_BYTES, Function, load_yaml
from .tasks import FEWSHOT_DELIMITER, PROMPT_SETS, Task

OURS = {
    "name": "the task's name (a plain name; its figure is smallbench_<name>_acc)",
    "label": "its column heading (default: the name)",
    "data": "the evaluated rows: a file or a list of files (.jsonl, .json, .csv, .parquet, .arrow)",
    "fewshot_data": "the rows --fewshot draws solved examples from",
    "template": "the context, str.format over a row's fields: {field}",
    "choices": "the choice strings",
    "choice_field": "instead of choices: the field holding each row's own list (rows may differ)",
    "label_field": "the field holding the right choice: its index or its text (default: label)",
    "target_delimiter": "between the context and a choice (default: one space)",
    "fewshot_delimiter": "after each solved example (default: a blank line)",
}
LMEVAL_MARKERS = frozenset({"task", "include", "doc_to_text", "output_type", "dataset_path"})
LMEVAL_READ = frozenset({
    "task", "task_alias", "dataset_path", "dataset_name", "dataset_kwargs", "training_split", "validation_split",
    "test_split", "fewshot_split", "doc_to_text", "doc_to_target", "doc_to_choice", "target_delimiter",
    "fewshot_delimiter", "num_fewshot", "output_type", "metric_list", "description", "repeats", "unsafe_code",
})
# keys that change nothing we measure
LMEVAL_IGNORED = frozenset({"tag", "group", "metadata", "should_decontaminate", "doc_to_decontamination_query"})
LOCAL_BUILDERS = ("json", "csv", "parquet", "arrow")
METRICS = ("acc", "acc_norm")
WHY_NOT = {  # lm-eval keys we refuse, and why
    "process_docs": "it runs Python code over the documents",
    "process_results": "it runs Python code over the scores",
    "filter_list": "filters apply to generated text",
    "fewshot_config": "the suite draws its own few-shot examples (--fewshot, --seed)",
    "generation_kwargs": "only log-likelihood (multiple_choice) tasks are scored",
    "gen_prefix": "a prefix before the answer is not applied",
    "use_prompt": "promptsource prompts are not read",
    "custom_dataset": "it runs Python code to make the dataset",
    "doc_to_image": "only text is scored",
    "doc_to_audio": "only text is scored",
}


MAX_INCLUDED_FILES = 64  # files one task file reads through include (lm-eval's chains are two or three deep)
MAX_INCLUDE_DEPTH = 16  # files in one chain of includes


class _Includes:
    """The files one task file reads: each parsed once (a file included from many places is not
    read again), their number and the depth of a chain bounded, so a file that fans out or
    chains includes ends with one line instead of reading for ever."""

    def __init__(self) -> None:
        self.fingerprints: dict[Path, str] = {}
        self.parsed: dict[Path, dict[str, Any]] = {}

    def read(self, path: Path, ancestors: tuple[Path, ...] = ()) -> dict[str, Any]:
        """The mapping of ``path``; its ``include`` files merged below it as lm-eval merges them
        (the includer's keys win). Each key's file is kept under ``_origins``."""
        if path in ancestors:
            raise TaskFileError(f"{ancestors[-1]}: include: {path} includes itself (a cycle)")
        if path in self.parsed:
            return dict(self.parsed[path])
        if len(ancestors) >= MAX_INCLUDE_DEPTH:
            raise TaskFileError(f"{ancestors[-1]}: include: a chain of more than {MAX_INCLUDE_DEPTH} included files "
                                "(the limit)")
        if len(self.fingerprints) >= MAX_INCLUDED_FILES:
            raise TaskFileError(f"{ancestors[-1]}: include: more than {MAX_INCLUDED_FILES} files included in all "
                                "(the limit)")
        config = self.parse(path)
        origins = {key: path for key in config}
        includes = config.pop("include", None)
        if includes is None:
            merged = config | {"_origins": origins}
        else:
            merged, merged_origins = {}, {}
            for include in includes if isinstance(includes, list) else [includes]:
                included = self.read(self.target(path, include), (*ancestors, path))
                included.pop("task_list", None)
                merged_origins.update(included.pop("_origins"))
                merged.update(included)
            origins.pop("include")
            merged = merged | config | {"_origins": merged_origins | origins}
        self.parsed[path] = merged
        return dict(merged)

    def parse(self, path: Path) -> dict[str, Any]:
        special = special_file_message(path)
        if special:
            raise TaskFileError(special)
        try:
            if path.stat().st_size > MAX_BYTES:
                raise TaskFileError(f"{path}: {path.stat().st_size:,} bytes; a task file may hold at most "
                                    f"{MAX_BYTES:,} (the limit)")
            text, self.fingerprints[path] = read_text_file(path)
        except (OSError, DataError) as exc:
            raise TaskFileError(f"{path}: cannot be read ({exc})") from None
        config = load_yaml(text, path)
        if not isinstance(config, dict):
            raise TaskFileError(f"{path}: expected a mapping of keys, got {type(config).__name__}")
        if not all(isinstance(key, str) for key in config):
            key = next(k for k in config if not isinstance(k, str))
            raise TaskFileError(f"{path}: {key!r}: keys must be text")
        return config

    @staticmethod
    def target(path: Path, include: Any) -> Path:
        """The file an ``include`` names, relative to the including file: a regular file that exists."""
        if not isinstance(include, str) or not include:
            raise TaskFileError(f"{path}: include: expected a file name, got {include!r}")
        target = Path(include) if Path(include).is_absolute() else path.parent / include
        special = special_file_message(target)
        if special:
            raise TaskFileError(f"{path}: include: {special}")
        if target.is_dir():
            raise TaskFileError(f"{path}: include: {include} is a folder; name a YAML file")
        if not target.is_file():
            raise TaskFileError(f"{path}: include: {include} does not exist")
        return target.resolve()


def load_task_file(path: Path) -> Task:
    """The ``Task`` a task file declares; ``TaskFileError`` (one line naming the file and key)
    when it cannot be read, uses a feature we do not run, or names data that is not there."""
    path = path.expanduser().resolve()
    special = special_file_message(path)
    if special:
        raise TaskFileError(special)
    if path.is_dir():
        raise TaskFileError(f"{path}: a folder; name the task's YAML file")
    if not path.is_file():
        raise TaskFileError(f"{path}: no such file")
    includes = _Includes()
    config = includes.read(path)
    fingerprints = includes.fingerprints
    origins: dict[str, Path] = config.pop("_origins")
    for key, value in config.items():
        function = _function_in(value)
        if function is not None:
            raise TaskFileError(f"{origins[key]}: {key}: !function {function.target} is not supported (a task file "
                                "is data; Python code named in it is never run)")
    lmeval = bool(LMEVAL_MARKERS & config.keys()) or len(fingerprints) > 1  # more than one: it includes
    reader = _LmEvalFile(path, config, origins) if lmeval else _OurFile(path, config)
    task = reader.task()
    definition = tuple((_definition_key(task.name, p, p == path), sha) for p, sha in fingerprints.items())
    return replace(task, read=replace(task.read, definition=definition))


def _definition_key(task: str, path: Path, root: bool) -> str:
    return f"{task}/{path.name}" if root else f"{task}/include/{path.parent.name}/{path.name}"


def _function_in(value: Any) -> Function | None:
    if isinstance(value, Function):
        return value
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        return next((f for f in map(_function_in, value) if f is not None), None)
    return None


class _File:
    """What both formats share: typed keys, data files, the rows reader."""

    def __init__(self, path: Path, config: dict[str, Any]) -> None:
        self.path = path
        self.config = config

    def fail(self, key: str, problem: str) -> TaskFileError:
        return TaskFileError(f"{self.path}: {key}: {problem}")

    def text(self, key: str, default: str | None = None, required: bool = False) -> str | None:
        value = self.config.get(key, default)
        if value is None and required:
            raise self.fail(key, "missing")
        if value is not None and not isinstance(value, str):
            raise self.fail(key, f"expected text, got {type(value).__name__} {value!r}")
        return value

    def files(self, key: str, value: Any, base: Path) -> tuple[Path, ...]:
        """Local data files named by ``value`` (a name, a glob or a list of them), each present."""
        names = [value] if isinstance(value, str) else value
        if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
            raise self.fail(key, f"expected a file name or a list of them, got {value!r}")
        found: list[Path] = []
        for name in names:
            path = base / Path(name).expanduser()  # an absolute name stays as it is
            if any(mark in name for mark in "*?["):
                matches = sorted(Path(m) for m in glob.glob(str(path)) if Path(m).is_file())
                if not matches:
                    raise self.fail(key, f"{name} matches no file (relative to {base})")
                found += matches
            elif path.is_file():
                found.append(path)
            else:
                raise self.fail(key, f"{name} does not exist (relative to {base})")
        return tuple(found)

    def builder(self, key: str, files: tuple[Path, ...]) -> str:
        try:
            return table_builder(files)
        except ValueError as exc:
            raise self.fail(key, str(exc)) from None

    def make(self, name: str, label: str, template: str, rules: Any, choices: tuple[str, ...] | None,
             reader: TaskFileRows, eval_split: str, fewshot_split: str, num_fewshot: int | None) -> Task:
        """The task, one prompt for every --prompts set (a task file has one). When a field or a
        template gives the choices, they are read from the evaluated rows: one list when every row
        gives the same, else none (``()``), each row then scored against its own."""
        if choices is None:
            try:
                choices = reader.shared_choices(eval_split)
            except DataError as exc:
                raise TaskFileError(f"{self.path}: the choices: {exc}") from None
        reader = replace(reader, choices=choices)
        prompt = DocPrompt(template, choices, self.text("target_delimiter", " "),
                           self.text("fewshot_delimiter", FEWSHOT_DELIMITER), rules=rules)
        return Task(name, name, ("", ""), (), dict.fromkeys(PROMPT_SETS, prompt), split=eval_split,
                    fewshot_split=fewshot_split, label=label, read=reader, num_fewshot=num_fewshot)


class _OurFile(_File):
    def task(self) -> Task:
        unknown = sorted(self.config.keys() - OURS.keys())
        if unknown:
            raise self.fail(unknown[0], f"not a key of a task file (keys: {', '.join(OURS)}; lm-evaluation-harness "
                                        "task files are told by task: or doc_to_text:)")
        name = self.text("name", required=True)
        template = self.text("template", required=True)
        problem = _format_problem(template)
        if problem:
            raise self.fail("template", problem)
        if self.config.get("data") is None:
            raise self.fail("data", "missing")
        splits = [("validation", self.files("data", self.config["data"], self.path.parent))]
        builder = self.builder("data", splits[0][1])
        if self.config.get("fewshot_data") is not None:
            splits.append(("train", self.files("fewshot_data", self.config["fewshot_data"], self.path.parent)))
            if self.builder("fewshot_data", splits[1][1]) != builder:
                raise self.fail("fewshot_data", "use files of the same kind as data")
        choice_field = self.text("choice_field")
        choices = self.config.get("choices")
        if (choices is None) == (choice_field is None):
            raise self.fail("choices", "give either choices (a list) or choice_field (the field holding them)")
        if choices is not None:
            try:
                choices = tuple(choice_list(choices, "choices"))
            except RowError as exc:
                raise self.fail("choices", str(exc)) from None
        rules = FormatRules(template, choice_field, self.text("label_field", "label"))
        reader = TaskFileRows(name, self.path, tuple(splits), builder, None, rules, (), ())
        return self.make(name, self.text("label", ""), template, rules, choices, reader, "validation", "train", None)


def _format_problem(template: str) -> str | None:
    """Only plain ``{field}`` references: ``{0}`` or ``{field.attr}`` would put an object's
    address, or another thing than a field, into the prompt."""
    import string

    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        return f"{template!r} does not parse ({exc})"
    for _, name, spec, conversion in parsed:
        if name is not None and (not name.isidentifier() or spec or conversion):
            return f"{{{name}}}: use plain {{field}} references to the row's fields"
    return None


class _LmEvalFile(_File):
    def __init__(self, path: Path, config: dict[str, Any], origins: dict[str, Path]) -> None:
        super().__init__(path, config)
        self.origins = origins

    def fail(self, key: str, problem: str) -> TaskFileError:
        return TaskFileError(f"{self.origins.get(key.split('.')[0], self.path)}: {key}: {problem}")

    def task(self) -> Task:
        self.refuse_unsupported()
        name = self.config.get("task")
        if not isinstance(name, str):
            raise self.fail("task", "missing" if name is None else f"expected one task's name, got {name!r} (a "
                                    "group of tasks is not read)")
        splits, builder = self.data_files()
        eval_split = self.text("test_split") or self.text("validation_split")
        if eval_split is None:
            raise self.fail("validation_split", "neither validation_split nor test_split is given")
        if eval_split not in dict(splits):
            raise self.fail("dataset_kwargs.data_files", f"has no {eval_split} split (it has "
                                                          f"{', '.join(dict(splits))}), which lm-eval evaluates")
        fewshot_split = (self.text("fewshot_split") or self.text("training_split") or self.text("validation_split")
                         or eval_split)
        rules, choices = self.rules()
        reader = TaskFileRows(name, self.path, splits, builder, self.text("dataset_name"), rules, (), ())
        return self.make(name, self.text("task_alias", ""), rules.doc_to_text, rules, choices, reader, eval_split,
                         fewshot_split, self.num_fewshot())

    def refuse_unsupported(self) -> None:
        for key in sorted(self.config):
            if key in LMEVAL_IGNORED:
                continue
            if key not in LMEVAL_READ:
                reason = WHY_NOT.get(key, "not a key this suite reads")
                raise self.fail(key, f"not supported ({reason})")
        output_type = self.config.get("output_type")
        if output_type != "multiple_choice":
            found = "missing, which lm-eval reads as generate_until" if output_type is None else repr(output_type)
            raise self.fail("output_type", f"{found}: only multiple_choice tasks are scored")
        if self.config.get("description"):
            raise self.fail("description", "not supported yet (lm-eval puts it before the few-shot examples); "
                                           "fold it into doc_to_text")
        if self.config.get("repeats", 1) != 1:
            raise self.fail("repeats", "only 1 (one score per choice) is supported")
        if self.config.get("unsafe_code", False) is not False:
            raise self.fail("unsafe_code", "tasks that run code are not supported")
        self.check_metrics()

    def check_metrics(self) -> None:
        metrics = self.config.get("metric_list")
        if metrics is None:
            return
        if not isinstance(metrics, list):
            raise self.fail("metric_list", f"expected a list, got {metrics!r}")
        for entry in metrics:
            metric = entry.get("metric") if isinstance(entry, dict) else None
            if metric not in METRICS:
                raise self.fail("metric_list", f"metric {metric!r} is not supported (the suite reports "
                                               f"{' and '.join(METRICS)})")
            if entry.get("aggregation", "mean") != "mean" or entry.get("higher_is_better", True) is not True:
                raise self.fail("metric_list", f"{metric}: only the mean, higher is better, is reported")
            extra = sorted(entry.keys() - {"metric", "aggregation", "higher_is_better"})
            if extra:
                raise self.fail("metric_list", f"{metric}: {extra[0]} is not supported")

    def data_files(self) -> tuple[tuple[tuple[str, tuple[Path, ...]], ...], str]:
        dataset_path = self.config.get("dataset_path")
        if dataset_path not in LOCAL_BUILDERS:
            raise self.fail("dataset_path", f"{dataset_path!r}: only local files are read ({', '.join(LOCAL_BUILDERS)}"
                                            " with dataset_kwargs.data_files); a file that includes this one can "
                                            "point it at local data")
        kwargs = self.config.get("dataset_kwargs") or {}
        if not isinstance(kwargs, dict) or "data_files" not in kwargs:
            raise self.fail("dataset_kwargs", "name the local files: dataset_kwargs: {data_files: {validation: FILE}}")
        extra = sorted(set(kwargs) - {"data_files", "trust_remote_code"})
        if extra:
            raise self.fail(f"dataset_kwargs.{extra[0]}", "not supported (only data_files is read)")
        data_files = kwargs["data_files"]
        base = self.origins.get("dataset_kwargs", self.path).parent
        named = data_files if isinstance(data_files, dict) else {"train": data_files}  # datasets' own default split
        splits = tuple((str(split), self.files("dataset_kwargs.data_files", value, base))
                       for split, value in named.items())
        return splits, dataset_path  # lm-eval reads every file with the builder it names, whatever its suffix

    def rules(self) -> tuple[JinjaRules, tuple[str, ...] | None]:
        text = self.config.get("doc_to_text")
        if not isinstance(text, str):
            raise self.fail("doc_to_text", "missing" if text is None else f"{text!r}: only a template or a field "
                                           "name is read (a number or list means multiple inputs: not supported)")
        target = self.config.get("doc_to_target")
        if target is None or isinstance(target, bool) or not isinstance(target, (str, int)):
            raise self.fail("doc_to_target", "missing" if target is None else f"{target!r}: expected a template, a "
                                             "field name or an index (several right answers are not supported)")
        choice = self.config.get("doc_to_choice")
        for key, source in (("doc_to_text", text), ("doc_to_target", target), ("doc_to_choice", choice)):
            problem = jinja_problem(source) if isinstance(source, str) else None
            if problem:
                raise self.fail(key, problem)
        if isinstance(choice, dict):
            choice = list(choice.values())
        if isinstance(choice, list):
            try:
                return JinjaRules(text, None, target), tuple(choice_list(choice, "doc_to_choice"))
            except RowError as exc:
                raise self.fail("doc_to_choice", str(exc)) from None
        if not isinstance(choice, str):
            raise self.fail("doc_to_choice", "missing (a multiple_choice task needs its choices)" if choice is None
                            else f"expected a list, a template or a field name, got {choice!r}")
        try:
            return JinjaRules(text, choice, target), _fixed_choices(choice)
        except TemplateLimit as exc:  # a template that reads no field over a limit: said at start-up
            raise self.fail("doc_to_choice", str(exc)) from None

    def num_fewshot(self) -> int | None:
        value = self.config.get("num_fewshot")
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise self.fail("num_fewshot", f"expected a whole number >= 0, got {value!r}")
        return value


def _fixed_choices(source: str) -> tuple[str, ...] | None:
    """The choices of a template that reads no field (``{{['no', 'yes']}}``), else None: they
    then come from the rows. A plain field name is read from the rows too. ``TemplateLimit``
    when rendering it runs past a limit: no row can change that."""
    if "{" not in source:
        return None
    try:
        value = ast.literal_eval(render(source, {}))
    except TemplateLimit:
        raise
    except (RowError, SyntaxError, ValueError, MemoryError, RecursionError):
        return None
    try:
        return tuple(choice_list(value, "doc_to_choice"))
    except RowError:
        return None
