from decimal import Decimal

from domain.commands import parse_command
from service.ledger import LandLedger


def test_a_recorded_case_reads_back_exactly(app: LandLedger) -> None:
    app.record(
        [
            parse_command(
                {
                    "cmd": "find_site",
                    "ref": "SD-X-1",
                    "on": "2022-02-10",
                    "source": "巡查",
                    "township": "苏店镇",
                    "unit": "苏店自然资源所",
                    "violation_types": ["占用耕地"],
                    "area_m2": "100.10",
                    "cultivated_m2": Decimal("3333.33") - Decimal("3300"),
                    "village": "东村 ",
                }
            )
        ],
        "staff-1",
    )
    case = app.case("SD-X-1")
    assert case.site.area_m2 == Decimal("100.10")
    assert case.site.cultivated_m2 == Decimal("33.33")
    assert case.site.village == "东村"
    assert case.state == "已发现"
