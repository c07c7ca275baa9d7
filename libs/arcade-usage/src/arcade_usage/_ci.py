"""Whether a CI system runs us, from the variables the CI systems set themselves.

Many CI systems set `CI`, but not all of them do, and a build that sets only
its own variables is still a build: `is_ci` reads both. The vendor table is
ci-info's list of CI systems and the variables each one sets (source:
github.com/watson/ci-info, `vendors.json`, as of commit c4e1d05, January 2026),
written here as data. As ci-info does, an explicit `CI=false` says "not CI"
whatever else is set; we read `0`, `no` and `off` (any case) the same way, as
`ARCADE_USAGE_TRACKING` is read.

Only the table and a loop, no import: every tracked command can afford it.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing
if TYPE_CHECKING:
    from collections.abc import Mapping

GENERIC_VARIABLES = (
    "CI",
    "CONTINUOUS_INTEGRATION",
    "BUILD_ID",
    "BUILD_NUMBER",
    "CI_APP_ID",
    "CI_BUILD_ID",
    "CI_BUILD_NUMBER",
    "CI_NAME",
    "RUN_ID",
)
"""Variables that several CI systems set: any of them not empty means CI."""

# (CI system, what it sets). Every condition of a row must hold:
#   NAME            set and not empty
#   NAME=value      set to exactly `value`
#   NAME*=text      set to something containing `text`
# A system recognised by either of two variables has two rows.
VENDORS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Agola CI", ("AGOLA_GIT_REF",)),
    ("Alpic", ("ALPIC_HOST",)),
    ("Appcircle", ("AC_APPCIRCLE",)),
    ("AppVeyor", ("APPVEYOR",)),
    ("AWS CodeBuild", ("CODEBUILD_BUILD_ARN",)),
    ("Azure Pipelines", ("TF_BUILD",)),
    ("Bamboo", ("bamboo_planKey",)),
    ("Bitbucket Pipelines", ("BITBUCKET_COMMIT",)),
    ("Bitrise", ("BITRISE_IO",)),
    ("Buddy", ("BUDDY_WORKSPACE_ID",)),
    ("Buildkite", ("BUILDKITE",)),
    ("CircleCI", ("CIRCLECI",)),
    ("Cirrus CI", ("CIRRUS_CI",)),
    ("Cloudflare Pages", ("CF_PAGES",)),
    ("Cloudflare Workers", ("WORKERS_CI",)),
    ("Codefresh", ("CF_BUILD_ID",)),
    ("Codemagic", ("CM_BUILD_ID",)),
    ("Codeship", ("CI_NAME=codeship",)),
    ("Drone", ("DRONE",)),
    ("dsari", ("DSARI",)),
    ("Earthly", ("EARTHLY_CI",)),
    ("Expo Application Services", ("EAS_BUILD",)),
    ("Gerrit", ("GERRIT_PROJECT",)),
    ("Gitea Actions", ("GITEA_ACTIONS",)),
    ("GitHub Actions", ("GITHUB_ACTIONS",)),
    ("GitLab CI", ("GITLAB_CI",)),
    ("GoCD", ("GO_PIPELINE_LABEL",)),
    ("Google Cloud Build", ("BUILDER_OUTPUT",)),
    ("Harness CI", ("HARNESS_BUILD_ID",)),
    ("Heroku", ("NODE*=/app/.heroku/node/bin/node",)),
    ("Hudson", ("HUDSON_URL",)),
    ("Jenkins", ("JENKINS_URL", "BUILD_ID")),
    ("LayerCI", ("LAYERCI",)),
    ("Magnum CI", ("MAGNUM",)),
    ("Netlify CI", ("NETLIFY",)),
    ("Nevercode", ("NEVERCODE",)),
    ("Prow", ("PROW_JOB_ID",)),
    ("ReleaseHub", ("RELEASE_BUILD_ID",)),
    ("Render", ("RENDER",)),
    ("Sail CI", ("SAILCI",)),
    ("Screwdriver", ("SCREWDRIVER",)),
    ("Semaphore", ("SEMAPHORE",)),
    ("Sourcehut", ("CI_NAME=sourcehut",)),
    ("Strider CD", ("STRIDER",)),
    ("TaskCluster", ("TASK_ID", "RUN_ID")),
    ("TeamCity", ("TEAMCITY_VERSION",)),
    ("Travis CI", ("TRAVIS",)),
    ("Vela", ("VELA",)),
    ("Vercel", ("NOW_BUILDER",)),
    ("Vercel", ("VERCEL",)),
    ("Visual Studio App Center", ("APPCENTER_BUILD_ID",)),
    ("Woodpecker", ("CI=woodpecker",)),
    ("Xcode Cloud", ("CI_XCODE_PROJECT",)),
    ("Xcode Server", ("XCS",)),
)

_OFF = ("0", "false", "no", "off")


def _parsed(condition: str) -> tuple[str, str, str]:
    """(variable, how, value): how is "set", "equals" or "contains"."""
    name, equals, value = condition.partition("=")
    if not equals:
        return name, "set", ""
    if name.endswith("*"):
        return name[:-1], "contains", value
    return name, "equals", value


_CHECKS = tuple(tuple(_parsed(c) for c in conditions) for _, conditions in VENDORS)

CI_VARIABLES: tuple[str, ...] = tuple(
    dict.fromkeys([*GENERIC_VARIABLES, *(name for checks in _CHECKS for name, _, _ in checks)])
)
"""Every variable `is_ci` reads (a test environment clears them all)."""


_READ = frozenset(CI_VARIABLES)


def is_ci(environ: Mapping[str, str] | None = None) -> bool:
    """True when `environ` (default: this process's) says a CI system runs us."""
    if environ is None:
        environ = os.environ
    # One pass over the environment's names; most hold none of ours.
    present = _READ.intersection(environ)
    if not present:
        return False
    ci = environ.get("CI", "")
    if ci and ci.strip().lower() in _OFF:
        return False  # said explicitly: not CI, whatever else is set
    if any(environ[name] for name in GENERIC_VARIABLES if name in present):
        return True
    for checks in _CHECKS:
        for name, how, expected in checks:
            value = environ[name] if name in present else ""
            if not value:
                break
            if how == "equals" and value != expected:
                break
            if how == "contains" and expected not in value:
                break
        else:
            return True
    return False
