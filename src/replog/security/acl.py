"""Authorization: a casbin ACL of (subject, object, action), reloadable without a restart."""

from __future__ import annotations

import logging
import threading
from enum import StrEnum
from pathlib import Path

import casbin

from replog.errors import ConfigError

__all__ = ["ACL_MODEL", "ANY_TOPIC", "CLUSTER", "Action", "Authorizer"]

log = logging.getLogger("replog.security")


class Action(StrEnum):
    """What a caller wants to do."""

    PRODUCE = "produce"
    CONSUME = "consume"
    ADMIN = "admin"  # topic administration; on "*": cluster membership, leadership transfer
    REPLICATE = "replicate"  # node-to-node Raft traffic


#: The request object of a call about the cluster as a whole (membership, leadership,
#: replication): only a rule whose object is exactly ``*`` grants it, never a topic pattern.
CLUSTER = "*"
#: The request object of a cluster-wide read that any topic grant allows (GetServers,
#: Cluster/Status, listing topics): a rule for the action on any object grants it.
ANY_TOPIC = "<any>"

#: The casbin model: a policy line grants (subject, object, action). "*" as the subject
#: matches any identity. The object is a topic name, matched against the rule's object with
#: casbin's globMatch (``*`` any run of characters, ``?`` one, ``[a-z]`` a set; topic names
#: hold no ``/``, the one character globMatch's wildcards skip); a rule object of "*" matches
#: everything, including CLUSTER. A consumer group's object is ``group:<name>``, matched
#: only by rules whose object starts with ``group:`` (a topic pattern such as ``*-events``
#: never grants the group ``billing-events``). Anything not granted is denied.
ACL_MODEL = """
[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, obj, act

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = (p.sub == "*" || r.sub == p.sub) && r.act == p.act && \\
    (p.obj == "*" || r.obj == "<any>" || (r.obj != "*" && globMatch(r.obj, p.obj) && \\
    regexMatch(r.obj, "^group:") == regexMatch(p.obj, "^group:")))
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
        log.debug("ACL reloaded from %s", self.policy_file)
        return True

    def allowed(self, subject: str, action: Action, obj: str = CLUSTER) -> bool:
        """Whether ``subject`` may perform ``action`` on ``obj``: a topic name, CLUSTER or
        ANY_TOPIC."""
        with self._lock:
            enforcer = self._enforcer
        return bool(enforcer.enforce(subject, obj, action.value))
