"""``pkiwarden completion bash|zsh|fish``, and completion of ``kubectl pkiwarden``.

The shell scripts ask ``pkiwarden completion --complete -- WORDS...`` for
the candidates, so they never go stale: the candidates come from the same
argparse parser that runs the command (:func:`candidates`, a pure function
over :func:`command_tree`). kubectl (1.26 and later) completes a plugin's
arguments by running ``kubectl_complete-pkiwarden ARGS...`` from PATH, which
answers in Cobra's format: one candidate a line, then ``:<directive>``.
:mod:`pkiwarden.cli` hands the parser in (``--complete`` and that
executable are answered there).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

# Cobra's ShellCompDirective values kubectl reads on the last line.
DIRECTIVE_DEFAULT = 0  # the shell may complete file names
DIRECTIVE_NO_FILES = 4


class Shell(StrEnum):
    BASH = "bash"
    ZSH = "zsh"
    FISH = "fish"


@dataclass(frozen=True)
class Command:
    """What may follow a command: its options and its sub-commands."""

    options: tuple[str, ...] = ()
    subcommands: tuple[tuple[str, Command], ...] = field(default=())

    def child(self, name: str) -> Command | None:
        return dict(self.subcommands).get(name)


def command_tree(parser: argparse.ArgumentParser) -> Command:
    """The options and sub-commands of ``parser``, recursively."""
    options: list[str] = []
    children: list[tuple[str, Command]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            children.extend((name, command_tree(sub)) for name, sub in action.choices.items())
        elif action.help != argparse.SUPPRESS:
            options.extend(option for option in action.option_strings if option.startswith("--"))
    return Command(tuple(options), tuple(children))


def candidates(tree: Command, words: Sequence[str]) -> list[str]:
    """Completions of the last of ``words`` (the arguments typed so far, "" for a new one)."""
    node = tree
    *before, current = list(words) or [""]
    for word in before:
        node = node.child(word) or node
    if current.startswith("-"):
        return [option for option in node.options if option.startswith(current)]
    return [name for name, _child in node.subcommands if name.startswith(current)]


def script(shell: Shell, program: str = "pkiwarden") -> str:
    """The completion script for ``shell``; it calls ``program completion --complete``."""
    function = "_" + program.replace("-", "_")
    ask = f"{program} completion --complete --"
    if shell is Shell.BASH:
        return (
            f"# bash completion for {program}: source <({program} completion bash)\n"
            f"{function}() {{\n"
            "  local IFS=$'\\n'\n"
            f'  COMPREPLY=($({ask} "${{COMP_WORDS[@]:1:COMP_CWORD}}" 2>/dev/null))\n'
            "}\n"
            f"complete -o default -F {function} {program}\n"
        )
    if shell is Shell.ZSH:
        return (
            f"#compdef {program}\n"
            f"# zsh completion for {program}: source <({program} completion zsh)\n"
            f"{function}() {{\n"
            "  local -a found\n"
            f'  found=("${{(@f)$({ask} "${{(@)words[2,CURRENT]}}" 2>/dev/null)}}")\n'
            "  if (( ${#found} )) && [[ -n ${found[1]} ]]; then\n"
            "    compadd -a found\n"
            "  else\n"
            "    _files\n"
            "  fi\n"
            "}\n"
            f"if (( $+functions[compdef] )); then compdef {function} {program}; fi\n"
        )
    return (
        f"# fish completion for {program}: {program} completion fish | source\n"
        f"complete -c {program} -f -a '({ask} (commandline -opc)[2..-1] (commandline -ct))'\n"
    )


def kubectl_answer(tree: Command, words: Sequence[str]) -> str:
    """What ``kubectl_complete-pkiwarden`` prints: candidates, then Cobra's directive."""
    found = candidates(tree, words)
    directive = DIRECTIVE_NO_FILES if found else DIRECTIVE_DEFAULT
    return "".join(f"{word}\n" for word in found) + f":{directive}\n"


# --------------------------------------------------------------------------- edges


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "completion",
        help="print the shell completion script for bash, zsh or fish",
        description="Print a completion script. bash: `source <(pkiwarden completion bash)`"
        " in ~/.bashrc; zsh: `source <(pkiwarden completion zsh)` in ~/.zshrc after compinit;"
        " fish: `pkiwarden completion fish | source` in config.fish. `kubectl pkiwarden`"
        " completes through kubectl_complete-pkiwarden, installed next to kubectl-pkiwarden.",
    )
    parser.add_argument("shell", choices=[shell.value for shell in Shell])
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    print(script(Shell(args.shell)), end="")
    return 0
