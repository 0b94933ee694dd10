"""Schemathesis hooks (SCHEMATHESIS_HOOKS=tests.api.fuzz_auth) for tests/api/test_schema_fuzz.py.

The fuzzer sends every request with one user's bearer token. Changing that user itself
(`PATCH /users/{its id}`: a new password, or fewer sites) bumps its token version and so
refuses the very token the fuzzer holds (api/deps.py, as it must), and every later request
would be a 401 that tests nothing. So the fuzzer leaves its own account alone:
FIRETOWER_FUZZ_USER_ID names it. Every other user, and every other route, is fuzzed."""

from __future__ import annotations

import os
from typing import Any

import schemathesis


@schemathesis.hook
def filter_path_parameters(context: Any, path_parameters: dict[str, Any] | None) -> bool:
    own = os.environ.get("FIRETOWER_FUZZ_USER_ID")
    return not (path_parameters and own is not None
                and str(path_parameters.get("user_id")) == own)
