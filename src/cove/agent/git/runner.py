"""Running the real `git` inside the sandbox, as its user, and turning its
failures into errors that carry git's own words.

Credentials. A username and password given to one call reach git through
a credential helper that reads them from the environment of that one git
process; the helper itself is named with `git -c` on the command line, which
git never writes to a config file. So the secret is never in the
repository's `.git/config`, in a remote's URL, in the agent's log, or in a
shell history; it lives in the agent's memory and the git process's
environment (readable only by the sandbox's own user) for the length of the
call. Git never prompts: there is no terminal, and `GIT_TERMINAL_PROMPT=0`
makes a missing credential a failure instead of a hang.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

from cove.agent.core import Agent
from cove.wire.errors import BadRequest, NotFound, PayloadTooLarge

# What a failure's message keeps of git's stderr (its last lines say why).
MAX_ERROR_TEXT = 4000

SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"
REPOSITORY_LOCATION_VARS = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
)

# The helper answers git's "get" with the two variables git's environment
# holds; `credential.helper=` first drops helpers the user configured, so
# theirs cannot answer (or store) this call's credentials.
_HELPER = (
    '!f() { test "$1" = get || exit 0; '
    'printf "username=%s\\npassword=%s\\n" "$COVE_GIT_USERNAME" "$COVE_GIT_PASSWORD"; }; f'
)
CREDENTIAL_ARGS = ["-c", "credential.helper=", "-c", f"credential.helper={_HELPER}"]
# On every call, above any config file: a URL an application passes on from its
# own users (`ext::sh -c ...`) never runs a command, even if user code wrote
# `protocol.allow=always` into ~/.gitconfig.
GUARD_ARGS = ["-c", "protocol.ext.allow=never"]


@dataclass
class Credentials:
    username: str | None
    password: str | None

    def args_and_env(self) -> tuple[list[str], dict[str, str]]:
        if self.username is None and self.password is None:
            return [], {}
        env = {"COVE_GIT_USERNAME": self.username or "", "COVE_GIT_PASSWORD": self.password or ""}
        return list(CREDENTIAL_ARGS), env


NO_CREDENTIALS = Credentials(None, None)


class GitRunner:
    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def resolve(self, path: str | None, what: str = "path") -> str:
        """An absolute path: relative ones are under the working directory."""
        if not path:
            raise BadRequest(f"field '{what}' is required")
        if "\0" in path:
            raise BadRequest(f"field '{what}' contains a NUL byte")
        return os.path.normpath(os.path.join(self.agent.config.workdir, path))

    def repo(self, path: str | None) -> str:
        """The directory of an existing repository (404 naming it when there is none)."""
        full = self.resolve(path)
        if not os.path.isdir(full):
            raise NotFound(f"repository path {path!r} does not exist")
        return full

    async def run(
        self,
        args: list[str],
        cwd: str,
        *,
        credentials: Credentials = NO_CREDENTIALS,
        env: dict[str, str] | None = None,
        ok_codes: tuple[int, ...] = (0,),
    ) -> tuple[int, str]:
        """Run `git ARGS` in `cwd`; (exit code, stdout) when the code is in `ok_codes`."""
        path = self.agent.base_env().get("PATH", "")
        # The user's PATH first; the system's after it, so an env update that
        # drops /usr/bin does not make an installed git look missing.
        git = shutil.which("git", path=f"{path}:{SYSTEM_PATH}" if path else SYSTEM_PATH)
        if git is None:
            raise BadRequest("git is not installed in this sandbox")
        cred_args, cred_env = credentials.args_and_env()
        child_env = self.agent.child_env(env)
        for name in REPOSITORY_LOCATION_VARS:
            # Each /git call names its repository by path; a GIT_DIR left in the
            # sandbox's env must not point every call at another repository.
            child_env.pop(name, None)
        child_env.update(cred_env)
        child_env["GIT_TERMINAL_PROMPT"] = "0"
        child_env.pop("GIT_ASKPASS", None)
        captured = await self.agent.run_captured(
            [git, *GUARD_ARGS, *cred_args, *args], cwd=cwd, env=child_env, timeout=None, cap=None
        )
        out = captured.output
        if out.truncated:
            raise PayloadTooLarge(
                f"git {args[0]} printed more than {self.agent.config.max_output_bytes} bytes"
            )
        if captured.exit_code in ok_codes:
            return captured.exit_code, out.stdout.decode("utf-8", "replace")
        stderr = out.stderr.decode("utf-8", "replace").strip()
        if "not a git repository" in stderr:
            raise NotFound(f"{_shown(cwd, self.agent.config.workdir)} is not a git repository")
        # Some refusals ("nothing to commit") are printed on stdout.
        said = stderr or out.stdout.decode("utf-8", "replace").strip()
        reason = said[-MAX_ERROR_TEXT:] or f"exit code {captured.exit_code}"
        # The caller's request could not be done: a 400 with git's reason, not a 500.
        raise BadRequest(f"git {args[0]} failed: {reason}", code="GIT_ERROR")


def _shown(path: str, workdir: str) -> str:
    """A path as the caller likely wrote it: relative to the working directory when under it."""
    rel = os.path.relpath(path, workdir)
    return repr(path if rel.startswith("..") else rel)
