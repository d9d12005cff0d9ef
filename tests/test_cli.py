"""The command-line contract: exit codes, Chinese on standard error, `history` lines."""

import errno
import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from helpers import cli, cmd, find, jsonl, record

from domain.errors import os_reason
from domain.values import china_today
from service.ledger import LandLedger

HISTORY_LINE = re.compile(
    r"(?P<on>\d{4}-\d{2}-\d{2})  "
    r"(?P<recorded>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+08:00)  "
    r"(?P<actor>\S+)  (?P<title>\S+)(?:  (?P<fields>.*))?"
)

PERSONAL = {"party_name": "张某", "party_id_no": "140421199001011234", "party_phone": "13812345678"}


def history(db: str, ref: str, *options: str) -> list[re.Match[str]]:
    code, out, err = cli("--db", db, "history", ref, *options)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    matches = [HISTORY_LINE.fullmatch(line) for line in lines]
    assert all(matches), lines
    return [m for m in matches if m]


def test_history_prints_one_line_per_event(app: LandLedger, db_url: str) -> None:
    start = datetime.now(UTC).replace(microsecond=0)
    record(
        app,
        find("H-1", on="2022-02-10", **PERSONAL, note="第一行\n第二行"),
        cmd("file_case", "H-1", "2022-02-15", case_no="立〔2022〕3号", handlers=["甲", "乙"]),
        actor="su-01",
    )
    # Recorded afterwards, dated back: history is in recorded order, each with its own date.
    record(app, cmd("stop", "H-1", "2022-02-12", order_no="停1", outcome="停工"), actor="brig-2")
    end = datetime.now(UTC) + timedelta(seconds=1)
    lines = history(db_url, "H-1")
    assert [m["on"] for m in lines] == ["2022-02-10", "2022-02-15", "2022-02-12"]
    assert [m["actor"] for m in lines] == ["su-01", "su-01", "brig-2"]
    assert [m["title"] for m in lines] == ["发现", "立案", "制止"]
    for m in lines:
        assert start <= datetime.fromisoformat(m["recorded"]) <= end
    found, filed, stopped = (m["fields"] for m in lines)
    assert "线索来源=巡查" in found and "乡镇（街道）=苏店镇" in found
    assert "违法类型=占用耕地" in found and "占地面积=1000.00" in found
    assert "备注=第一行\\n第二行" in found  # still one line
    assert "立案编号=立〔2022〕3号" in filed and "承办人=甲、乙" in filed
    assert "责令停止通知书编号=停1" in stopped and "制止结果=停工" in stopped


def test_history_masks_personal_data_unless_asked(app: LandLedger, db_url: str) -> None:
    record(app, find("H-2", **PERSONAL))
    (masked,) = history(db_url, "H-2")
    assert "证件号码=140421********1234" in masked["fields"]
    assert "联系电话=138****5678" in masked["fields"]
    assert "140421199001011234" not in masked["fields"]
    assert "13812345678" not in masked["fields"]
    (unmasked,) = history(db_url, "H-2", "--unmasked")
    assert "证件号码=140421199001011234" in unmasked["fields"]
    assert "联系电话=13812345678" in unmasked["fields"]


def test_history_shows_the_actors_unit_once_staff_are_registered(
    app: LandLedger, db_url: str
) -> None:
    record(
        app,
        {
            "cmd": "register_staff",
            "staff_id": "b1",
            "name": "钱",
            "unit": "执法监察大队",
            "role": "执法大队",
        },
        actor="b1",
    )
    record(app, find("H-3"), actor="b1")
    (line,) = history(db_url, "H-3")
    assert line["actor"] == "b1（执法监察大队）"


def test_history_of_an_unknown_ref_exits_1(db_url: str) -> None:
    code, out, err = cli("--db", db_url, "history", "NO-SUCH")
    assert (code, out) == (1, "")
    assert err == "错误：编号 “NO-SUCH” 不存在\n"


@pytest.mark.parametrize(
    ("args", "told"),
    [
        (["--frobnicate", "stats"], "无法识别的参数：--frobnicate"),
        (["frobnicate"], "参数 COMMAND：无效的选择 'frobnicate'（可选：'tui', 'demo'"),
        (["stats", "--by", "year"], "参数 --by：无效的选择 'year'（可选：'township'"),
        (["stats", "--jsn"], "无法识别的参数：--jsn"),
        (["history"], "缺少必需的参数：ref"),
        (["record", "--file"], "参数 --file：需要一个值"),
        (["history", "X", "--masked"], "无法识别的参数：--masked"),
        (["demo", "--cases", "many"], "参数 --cases：'many' 不是整数"),
    ],
)
def test_command_line_misuse_exits_2_in_chinese(db_url: str, args: list[str], told: str) -> None:
    code, out, err = cli("--db", db_url, *args)
    assert code == 2
    assert out == ""
    assert err.startswith("用法：landledger") and "命令行用法错误：" + told in err
    assert not re.search(r"usage|invalid|argument|required|unrecognized|expected", err)


@pytest.mark.backends("sqlite")  # no store is opened
def test_help_is_in_chinese() -> None:
    code, out, _ = cli("stats", "--help")
    assert code == 0
    assert out.startswith("用法：landledger stats") and "选项:" in out
    assert "-h, --help            显示此帮助并退出" in out
    assert not re.search(r"usage|show this help|options", out)


def test_a_bad_cutoff_is_rejected_input(db_url: str) -> None:
    code, _, err = cli("--db", db_url, "stats", "--json", "--as-of", "2022-02-30")
    assert code == 1 and "--as-of：“2022-02-30”不是有效日期" in err
    code, _, err = cli("--db", db_url, "stats", "--json", "--known-at", "yesterday")
    assert code == 1 and "--known-at：“yesterday”不是有效时间" in err


def test_stats_json_has_the_contracts_shape(app: LandLedger, db_url: str) -> None:
    record(app, find("J-1"))
    code, out, _ = cli("--db", db_url, "stats", "--json", "--as-of", "2022-02-28")
    assert code == 0
    assert out.count("\n") == 1  # one object
    result = json.loads(out)
    assert list(result) == ["as_of", "known_at", "by", "groups", "total", "fingerprint"]
    assert result["fingerprint"] == app.fingerprint()
    assert (result["as_of"], result["known_at"], result["by"]) == ("2022-02-28", None, "township")
    code, out, _ = cli("--db", db_url, "stats")
    assert code == 0 and "苏店镇" in out and "合计" in out


# A real process ---------------------------------------------------------------------------


def run(
    *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tui.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        encoding="utf-8",
        env={**os.environ, "PYTHONIOENCODING": "utf-8", **(env or {})},
        timeout=60,
        check=False,
    )


def test_exit_codes_of_a_real_process(tmp_path: Path) -> None:
    db = str(tmp_path / "cli.db")
    path = tmp_path / "cmds.jsonl"
    path.write_text(jsonl([find("P-1"), cmd("stop", "P-1", "2022-02-11")]), encoding="utf-8")
    done = run("--db", db, "--actor", "su-01", "record", "--file", str(path))
    assert (done.returncode, done.stderr) == (0, "")
    assert "已记录 2 条命令" in done.stdout

    bad = jsonl([cmd("stop", "P-1", "2022-02-12"), find("P-2", area_m2="10", eco_redline_m2="11")])
    done = run("--db", db, "record", stdin=bad)
    assert done.returncode == 1
    assert (
        "第2行 find_site：生态保护红线面积 11.00㎡ 大于占地面积 10.00㎡（全部未写入）"
        in done.stderr
    )

    done = run("--db", db, "record", stdin="{not json}\n")
    assert done.returncode == 1 and "第1行：不是有效的 JSON" in done.stderr

    done = run("--db", db, "record", stdin='{"cmd": "explode", "ref": "P-1", "on": "2022-02-12"}\n')
    assert done.returncode == 1 and "未知命令 “explode”" in done.stderr

    done = run("--db", db, "history", "P-9")
    assert done.returncode == 1 and "编号 “P-9” 不存在" in done.stderr

    assert run("--db", db, "--nonsense").returncode == 2
    assert run("--db", db, "undo").returncode == 2

    # The environment does what the options do.
    done = run("history", "P-1", env={"LANDLEDGER_DB": db})
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    assert len(lines) == 2 and all(HISTORY_LINE.fullmatch(line) for line in lines)
    assert [line.split("  ")[2] for line in lines] == ["su-01", "su-01"]
    env = {"LANDLEDGER_DB": db, "LANDLEDGER_ACTOR": "env-actor"}
    done = run("record", stdin=jsonl([cmd("flag", "P-1", "2022-02-12", kind="典型案件")]), env=env)
    assert done.returncode == 0
    done = run("history", "P-1", env={"LANDLEDGER_DB": db})
    assert done.stdout.splitlines()[-1].split("  ")[2:4] == ["env-actor", "标记"]


def test_only_the_brigade_and_administrators_may_unmask(db_url: str, tmp_path: Path) -> None:
    staff = [
        {
            "cmd": "register_staff",
            "staff_id": "A1",
            "name": "王管理",
            "unit": "执法监察大队",
            "role": "管理员",
        },
        {
            "cmd": "register_staff",
            "staff_id": "S1",
            "name": "李所员",
            "unit": "苏店自然资源所",
            "role": "所员",
        },
    ]
    site = find("U-1", party_id_no="110101199001011234", party_phone="13812345678")
    assert cli("--db", db_url, "--actor", "A1", "record", stdin=jsonl([*staff, site]))[0] == 0
    out = str(tmp_path / "ledger.xlsx")
    code, _, err = cli("--db", db_url, "--actor", "S1", "history", "U-1", "--unmasked")
    assert code == 1 and "无权查看完整证件号码和电话" in err
    code, _, err = cli(
        "--db", db_url, "--actor", "S1", "export", "ledger", "--out", out, "--unmasked"
    )
    assert code == 1 and "无权" in err and not Path(out).exists()
    assert "138****5678" in cli("--db", db_url, "--actor", "S1", "history", "U-1")[1]
    code, shown, _ = cli("--db", db_url, "--actor", "A1", "history", "U-1", "--unmasked")
    assert code == 0 and "13812345678" in shown and "110101199001011234" in shown


def test_another_district_is_another_data_file(db_url: str, tmp_path: Path) -> None:
    from domain.campaign import DEFAULT_CAMPAIGN_FILE

    text = DEFAULT_CAMPAIGN_FILE.read_text(encoding="utf-8")
    other = tmp_path / "other.toml"
    other.write_text(text.replace('"韩店街道", "苏店镇"', '"城关镇", "苏店镇"'), encoding="utf-8")
    site = find("O-1", township="城关镇")
    code, _, err = cli("--db", db_url, "--campaign", str(other), "record", stdin=jsonl([site]))
    assert code == 0, err
    code, out, _ = cli("--db", db_url, "stats", "--json")
    assert [g["key"] for g in json.loads(out)["groups"]][:2] == ["城关镇", "苏店镇"]

    broken = tmp_path / "broken.toml"
    broken.write_text("townships = [", encoding="utf-8")
    code, _, err = cli("--db", str(tmp_path / "new.db"), "--campaign", str(broken), "stats")
    assert code == 1 and "专项行动数据文件" in err


def test_campaign_given_to_a_store_that_has_one_is_said_ignored(
    app: LandLedger, db_url: str, tmp_path: Path
) -> None:
    from domain.campaign import DEFAULT_CAMPAIGN_FILE

    record(app, find("C-1"))
    other = tmp_path / "other.toml"
    text = DEFAULT_CAMPAIGN_FILE.read_text(encoding="utf-8")
    other.write_text(text.replace('"韩店街道", "苏店镇"', '"城关镇", "苏店镇"'), encoding="utf-8")
    code, _, err = cli("--db", db_url, "--campaign", str(other), "stats")
    assert code == 0
    assert err == (
        "提示：此库已有专项行动“严厉打击建设工程领域违法用地专项行动”（建库时确定），"
        f"--campaign 给出的 {other} 被忽略\n"
    )
    # The file the store began with is not "ignored": nothing to say.
    code, _, err = cli("--db", db_url, "--campaign", str(DEFAULT_CAMPAIGN_FILE), "stats")
    assert (code, err) == (0, "")


@pytest.mark.backends("sqlite")  # the date of the header
def test_stats_text_is_dated_today_without_as_of(db_url: str) -> None:
    code, out, _ = cli("--db", db_url, "stats")
    assert code == 0
    assert out.splitlines()[0] == f"截至 {china_today().isoformat()}"


@pytest.mark.backends("sqlite")  # a SQLite file's folder
def test_a_mistyped_db_folder_is_an_error_and_made_only_at_the_default_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "typo" / "ledger.db"
    code, _, err = cli("--db", str(missing), "stats")
    assert code == 1
    assert err == (
        f"错误：无法打开数据库 {missing}：目录 {missing.parent} 不存在"
        "（请检查路径；只有默认位置的目录会自动创建）\n"
    )
    assert not missing.parent.exists()
    code, _, err = cli("--db", "", "stats")
    assert (code, err) == (1, "错误：--db：不能为空，应为 SQLite 文件路径或 postgresql:// 地址\n")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LANDLEDGER_DB", raising=False)
    assert cli("stats")[0] == 0
    assert (tmp_path / "home" / "landledger" / "landledger.db").exists()


@pytest.mark.backends("sqlite")  # reading files
def test_file_errors_are_told_in_chinese_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "other.toml"
    code, _, err = cli("--db", str(tmp_path / "new.db"), "--campaign", str(missing), "stats")
    assert (code, err) == (1, f"错误：专项行动数据文件 {missing} 无法读取：文件或目录不存在\n")
    # What root is never refused, and a full disk, said the same way.
    assert os_reason(PermissionError(errno.EACCES, "Permission denied")) == "没有权限"
    assert os_reason(OSError(errno.ENOSPC, "No space left on device")) == "磁盘空间不足"
