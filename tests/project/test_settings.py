"""Start-up refuses the published development key with DEBUG off, and the production
environment passes `check --deploy`."""

import pytest

from tests.project.conftest import run

REFUSAL = (
    "Steward will not serve with DEBUG off and no SECRET_KEY: set SECRET_KEY to a long random "
    "secret (or DEBUG=1 on a development machine)."
)
LOAD_THE_WEB_APP = ["-c", "import project.wsgi"]


@pytest.mark.parametrize("secret_key", [None, "", "steward-insecure-development-key-change-me"])
def test_the_web_app_refuses_to_load_without_a_secret_key(development_env, secret_key):
    if secret_key is not None:
        development_env["SECRET_KEY"] = secret_key

    result = run(LOAD_THE_WEB_APP, development_env)

    # gunicorn's "app failed to load", so its master stops instead of booting workers again
    assert result.returncode == 4
    assert result.stderr.strip() == REFUSAL


@pytest.mark.parametrize("env", [{"DEBUG": "1"}, {"SECRET_KEY": "a-secret-of-this-deployment"}])
def test_debug_or_a_secret_key_lets_it_load(development_env, env, tmp_path):
    # (with a STATIC_ROOT, or WhiteNoise rightly warns that collectstatic has not run)
    development_env["STATIC_ROOT"] = str(tmp_path)

    result = run(LOAD_THE_WEB_APP, {**development_env, **env})

    assert result.returncode == 0, result.stderr
    assert "SECRET_KEY" not in result.stderr


def test_commands_and_the_test_settings_need_no_secret_key(development_env):
    result = run(["manage.py", "check"], development_env)

    assert result.returncode == 0, result.stderr
    assert "SECRET_KEY" not in result.stderr


def test_the_production_environment_passes_check_deploy(production_env):
    result = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], production_env)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "System check identified no issues (0 silenced)."


def test_check_deploy_names_what_the_defaults_leave_open(development_env):
    result = run(["manage.py", "check", "--deploy"], development_env)

    for warning in ("W004", "W008", "W009", "W012", "W016"):
        assert f"security.{warning}" in result.stderr, result.stderr
