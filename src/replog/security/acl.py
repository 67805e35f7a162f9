"""Authorization: a casbin ACL of (subject, object, action), reloadable without a restart."""

from __future__ import annotations

import logging
import threading
from enum import StrEnum
from pathlib import Path

import casbin

from replog.errors import ConfigError

__all__ = ["ACL_MODEL", "Action", "Authorizer"]

log = logging.getLogger("replog.security")


class Action(StrEnum):
    """What a caller wants to do."""

    PRODUCE = "produce"
    CONSUME = "consume"
    ADMIN = "admin"  # cluster membership, leadership transfer
    REPLICATE = "replicate"  # node-to-node Raft traffic


#: The casbin model: a policy line grants (subject, object, action); "*" matches any
#: subject or object. Objects are "*" until topics exist. Anything not granted is denied.
ACL_MODEL = """
[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, obj, act

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = (p.sub == "*" || r.sub == p.sub) && (p.obj == "*" || r.obj == p.obj) && r.act == p.act
"""


class Authorizer:
    """Decides whether a subject may perform an action, from a CSV policy file.

    ``reload()`` re-reads the files; a policy that fails to load leaves the previous one
    in force. Task-safe.
    """

    def __init__(self, policy_file: str, model_file: str | None = None) -> None:
        self.policy_file = policy_file
        self.model_file = model_file
        self._lock = threading.Lock()
        self._enforcer = self._load()

    def _load(self) -> casbin.Enforcer:
        if not Path(self.policy_file).is_file():
            raise ConfigError(f"ACL policy file {self.policy_file} does not exist")
        try:
            if self.model_file is not None:
                model = casbin.Enforcer.new_model(path=self.model_file)
            else:
                model = casbin.Enforcer.new_model(text=ACL_MODEL)
            enforcer = casbin.Enforcer(model, casbin.persist.adapters.FileAdapter(self.policy_file))
        except Exception as exc:  # casbin raises bare exceptions for bad files
            raise ConfigError(f"cannot load the ACL: {exc}") from exc
        for rule in enforcer.get_policy():
            if len(rule) != 3 or rule[2] not in {*Action, "*"}:
                raise ConfigError(f"ACL rule {rule} is not (subject, object, action)")
        return enforcer

    def reload(self) -> bool:
        """Re-read the policy; return False (and keep the old one) if it does not load."""
        try:
            enforcer = self._load()
        except ConfigError as exc:
            log.error("ACL reload failed, keeping the previous policy: %s", exc)
            return False
        with self._lock:
            self._enforcer = enforcer
        log.info("ACL reloaded from %s", self.policy_file)
        return True

    def allowed(self, subject: str, action: Action, obj: str = "*") -> bool:
        """Whether ``subject`` may perform ``action`` on ``obj``."""
        with self._lock:
            enforcer = self._enforcer
        return bool(enforcer.enforce(subject, obj, action.value))
