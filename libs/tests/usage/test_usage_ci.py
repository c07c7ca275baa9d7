"""`is_ci`: every CI system of ci-info's list is recognised by its own variables alone.

That the events carry it is test_usage_properties.py's `test_is_ci`.
"""

from __future__ import annotations

import pytest

from arcade_usage import CI_VARIABLES, is_ci

# What each CI system sets, as a build would see it (and nothing else: no `CI`).
VENDOR_ENV: dict[str, list[dict[str, str]]] = {
    "Agola CI": [{"AGOLA_GIT_REF": "refs/heads/main"}],
    "Alpic": [{"ALPIC_HOST": "build.alpic.ai"}],
    "Appcircle": [{"AC_APPCIRCLE": "true"}],
    "AppVeyor": [{"APPVEYOR": "True"}],
    "AWS CodeBuild": [{"CODEBUILD_BUILD_ARN": "arn:aws:codebuild:eu-west-1:1:build/p:1"}],
    "Azure Pipelines": [{"TF_BUILD": "True"}],
    "Bamboo": [{"bamboo_planKey": "PROJ-PLAN"}],
    "Bitbucket Pipelines": [{"BITBUCKET_COMMIT": "0a1b2c3"}],
    "Bitrise": [{"BITRISE_IO": "true"}],
    "Buddy": [{"BUDDY_WORKSPACE_ID": "42"}],
    "Buildkite": [{"BUILDKITE": "true"}],
    "CircleCI": [{"CIRCLECI": "true"}],
    "Cirrus CI": [{"CIRRUS_CI": "true"}],
    "Cloudflare Pages": [{"CF_PAGES": "1"}],
    "Cloudflare Workers": [{"WORKERS_CI": "1"}],
    "Codefresh": [{"CF_BUILD_ID": "5f0c"}],
    "Codemagic": [{"CM_BUILD_ID": "b-1"}],
    "Codeship": [{"CI_NAME": "codeship"}],
    "Drone": [{"DRONE": "true"}],
    "dsari": [{"DSARI": "1"}],
    "Earthly": [{"EARTHLY_CI": "true"}],
    "Expo Application Services": [{"EAS_BUILD": "true"}],
    "Gerrit": [{"GERRIT_PROJECT": "arcade"}],
    "Gitea Actions": [{"GITEA_ACTIONS": "true"}],
    "GitHub Actions": [{"GITHUB_ACTIONS": "true"}],
    "GitLab CI": [{"GITLAB_CI": "true"}],
    "GoCD": [{"GO_PIPELINE_LABEL": "12"}],
    "Google Cloud Build": [{"BUILDER_OUTPUT": "/builder/outputs"}],
    "Harness CI": [{"HARNESS_BUILD_ID": "7"}],
    "Heroku": [{"NODE": "/app/.heroku/node/bin/node"}],
    "Hudson": [{"HUDSON_URL": "http://hudson.local/"}],
    "Jenkins": [{"JENKINS_URL": "http://jenkins.local/", "BUILD_ID": "12"}],
    "LayerCI": [{"LAYERCI": "true"}],
    "Magnum CI": [{"MAGNUM": "true"}],
    "Netlify CI": [{"NETLIFY": "true"}],
    "Nevercode": [{"NEVERCODE": "true"}],
    "Prow": [{"PROW_JOB_ID": "c0ffee"}],
    "ReleaseHub": [{"RELEASE_BUILD_ID": "r-1"}],
    "Render": [{"RENDER": "true"}],
    "Sail CI": [{"SAILCI": "true"}],
    "Screwdriver": [{"SCREWDRIVER": "true"}],
    "Semaphore": [{"SEMAPHORE": "true"}],
    "Sourcehut": [{"CI_NAME": "sourcehut"}],
    "Strider CD": [{"STRIDER": "true"}],
    "TaskCluster": [{"TASK_ID": "abc", "RUN_ID": "0"}],
    "TeamCity": [{"TEAMCITY_VERSION": "2024.03"}],
    "Travis CI": [{"TRAVIS": "true"}],
    "Vela": [{"VELA": "true"}],
    "Vercel": [{"NOW_BUILDER": "1"}, {"VERCEL": "1"}],
    "Visual Studio App Center": [{"APPCENTER_BUILD_ID": "9"}],
    "Woodpecker": [{"CI": "woodpecker"}],
    "Xcode Cloud": [{"CI_XCODE_PROJECT": "App.xcodeproj"}],
    "Xcode Server": [{"XCS": "1"}],
}

VENDOR_CASES = [
    pytest.param(env, id=f"{vendor}-{'+'.join(env)}")
    for vendor, envs in VENDOR_ENV.items()
    for env in envs
]


GENERIC = {
    "CI",
    "CONTINUOUS_INTEGRATION",
    "BUILD_ID",
    "BUILD_NUMBER",
    "CI_APP_ID",
    "CI_BUILD_ID",
    "CI_BUILD_NUMBER",
    "CI_NAME",
    "RUN_ID",
}


def test_the_variables_read_are_those_of_the_systems_listed_here() -> None:
    # ci-info's 53 systems: what is_ci reads is exactly what they set, and the
    # variables several of them share; a test environment clears all of them.
    assert len(VENDOR_ENV) == 53
    named = {name for envs in VENDOR_ENV.values() for env in envs for name in env}
    assert set(CI_VARIABLES) == named | GENERIC
    assert len(CI_VARIABLES) == len(set(CI_VARIABLES))


@pytest.mark.parametrize("env", VENDOR_CASES)
def test_each_ci_system_alone_sets_is_ci(env: dict[str, str]) -> None:
    assert is_ci(env) is True


@pytest.mark.parametrize("env", VENDOR_CASES)
def test_ci_false_says_not_ci_whatever_the_system_sets(env: dict[str, str]) -> None:
    # ci-info's rule: an explicit CI=false bypasses every other check.
    assert is_ci({**env, "CI": "false"}) is False


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, False),
        ({"CI": "true"}, True),
        ({"CI": "1"}, True),
        ({"CI": "yes"}, True),
        ({"CI": ""}, False),
        ({"CI": "false"}, False),
        ({"CI": " FALSE "}, False),
        ({"CI": "0"}, False),
        ({"CI": "no"}, False),
        ({"CI": "Off"}, False),
        ({"CONTINUOUS_INTEGRATION": "true"}, True),
        ({"BUILD_NUMBER": "7"}, True),
        ({"CI_NAME": "anything"}, True),
        ({"CI_APP_ID": "a"}, True),
        ({"CI_BUILD_ID": "b"}, True),
        ({"CI_BUILD_NUMBER": "3"}, True),
        # A variable set to nothing is not set; a system's value must match where it is named.
        ({"GITHUB_ACTIONS": ""}, False),
        ({"NODE": "/usr/bin/node"}, False),
        ({"JENKINS_URL": "http://jenkins.local/"}, False),
    ],
)
def test_generic_variables_and_what_is_not_ci(env: dict[str, str], expected: bool) -> None:
    assert is_ci(env) is expected
