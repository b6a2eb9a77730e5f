"""The operators' command line queues a job and watches it to the end."""

from __future__ import annotations

import threading

from shared_code.app import cli, services
from tests.support.builders import reference
from tests.support.notify_calls import queued
from tests.support.queue_driver import QueueDriver


def test_cli_queues_a_broadcast_and_reports_the_final_counts(app_env, connector, capsys):
    services.get().addresses.save_many([reference(connector.url, f"c-{i}") for i in range(3)], trusted=False)
    host = QueueDriver(app_env.values["AzureWebJobsStorage"], app_env.values["JobsQueueName"])
    stop = threading.Event()
    thread = host.run_in_thread(stop.is_set, timeout=30)

    code = cli.main(["--all", "--id", "cli-1", "--locale", "en-US", "from the ops team"])
    stop.set()
    thread.join()

    assert code == 0
    out = capsys.readouterr().out
    assert "queued notification cli-1" in out
    assert "done: 3/3 sent, 0 failed, 0 inactive, 0 gone, 0 pending" in out
    assert [connector.texts(f"c-{i}") for i in range(3)] == [["from the ops team"]] * 3


def test_the_cli_runs_as_the_readme_says():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "shared_code.app.cli", "--help"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0
    assert "--all" in done.stdout


def test_cli_report_writes_the_notifications_csv_to_a_file(app_env, connector, tmp_path, capsys):
    services.get().addresses.save_many([reference(connector.url, f"c-{i}") for i in range(2)], trusted=False)
    host = QueueDriver(app_env.values["AzureWebJobsStorage"], app_env.values["JobsQueueName"])
    stop = threading.Event()
    thread = host.run_in_thread(stop.is_set, timeout=30)
    assert cli.main(["--all", "--id", "cli-report", "--ack", "Got it", "please confirm"]) == 0
    stop.set()
    thread.join()
    out = tmp_path / "report.csv"

    code = cli.main(["report", "cli-report", "-o", str(out)])

    assert code == 0
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("channel,conversation,user id")
    assert sorted(line.split(",")[1] for line in lines[1:]) == ["c-0", "c-1"]
    assert connector.activities("c-0")[0]["attachments"][0]["content"]["actions"][0]["title"] == "Got it"


def test_cli_report_of_an_unknown_notification_says_so_and_exits_2(app_env, capsys):
    code = cli.main(["report", "never-sent"])

    assert code == 2
    assert "no notification with that id" in capsys.readouterr().err


def test_cli_builds_team_channel_and_channel_id_jobs():
    from argparse import Namespace

    common = {"all": False, "conversation": None, "user": None, "channel": None, "team": None, "team_channel": None,
              "group": None, "users": None, "tenant": None, "in_tenant": None, "include_guests": False,
              "id": "j", "dialog": None, "text": "hi", "locale": None}
    assert cli.build_job(Namespace(**common | {"team_channel": "19:t"}))["to"] == {"teamChannel": "19:t"}
    assert cli.build_job(Namespace(**common | {"team": "19:t"}))["to"] == {"team": "19:t"}
    assert cli.build_job(Namespace(**common | {"channel": "msteams"}))["to"] == {"channelId": "msteams"}
    assert cli.build_job(Namespace(**common | {"group": "g", "in_tenant": "t"}))["to"] == {"group": "g", "tenant": "t"}
    assert cli.build_job(Namespace(**common | {"tenant": "t", "include_guests": True}))["to"] == {
        "tenant": "t", "includeGuests": True}


def test_cli_refuses_a_team_broadcast_to_an_unknown_team_before_queueing_it(app_env, connector, capsys):
    code = cli.main(["--team", "19:t@thread.tacv2", "--no-wait", "hello team"])

    assert code == 2
    assert "no saved team" in capsys.readouterr().err
    assert queued() == []


def test_cli_refuses_a_team_channel_of_an_unknown_team(app_env, connector, capsys):
    code = cli.main(["--team-channel", "19:nobody@thread.tacv2", "--no-wait", "hello"])

    assert code == 2
    assert "no saved team" in capsys.readouterr().err


def _sent_broadcast(app_env, connector, notification_id: str, count: int) -> QueueDriver:
    services.get().addresses.save_many([reference(connector.url, f"c-{i}") for i in range(count)], trusted=False)
    host = QueueDriver(app_env.values["AzureWebJobsStorage"], app_env.values["JobsQueueName"])
    assert cli.main(["--all", "--id", notification_id, "--no-wait", "wrong text"]) == 0
    def done() -> bool:
        found = services.get().notifications.status(notification_id)
        return found is not None and found.to_json()["state"] == "done"

    host.run_until(done)
    return host


def test_cli_edit_updates_every_delivered_message(app_env, connector, capsys):
    host = _sent_broadcast(app_env, connector, "cli-edit", 2)

    code = cli.main(["edit", "cli-edit", "right text"])
    host.run_until(lambda: len(connector.updated) == 2)

    assert code == 0 and "notification cli-edit edited: version 1" in capsys.readouterr().out
    assert [connector.texts(f"c-{i}") for i in range(2)] == [["right text"]] * 2


def test_cli_recall_deletes_every_delivered_message(app_env, connector, capsys):
    host = _sent_broadcast(app_env, connector, "cli-recall", 2)

    code = cli.main(["recall", "cli-recall"])
    host.run_until(lambda: len(connector.deleted) == 2)

    assert code == 0 and "notification cli-recall recalled" in capsys.readouterr().out
    assert connector.total_delivered() == 0


def test_cli_edit_of_an_unknown_notification_says_so_and_exits_2(app_env, capsys):
    code = cli.main(["edit", "nobody", "text"])

    assert code == 2 and "no notification with that id" in capsys.readouterr().err


def test_cli_sends_to_a_list_of_people_from_a_file_through_graph(app_env, connector, tmp_path, capsys):
    from tests.support.organisation import organisation, received

    with organisation(app_env, connector) as graph:
        people = graph.add_users(3, prefix="p")
        listed = tmp_path / "people.txt"
        listed.write_text("# finance\n" + "\n".join(u.user_principal_name for u in people) + "\n\n")
        host = QueueDriver(app_env.values["AzureWebJobsStorage"], app_env.values["JobsQueueName"])
        stop = threading.Event()
        thread = host.run_in_thread(stop.is_set, timeout=30)

        code = cli.main(["--users", str(listed), "--id", "cli-people", "hello people"])
        stop.set()
        thread.join()

        assert code == 0
        assert "done: 3/3 sent" in capsys.readouterr().out
        assert sum(received(connector, "hello people").values()) == 3
