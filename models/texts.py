"""One sentence of evidence per finding, in Chinese and in English."""

from __future__ import annotations

from typing import Any, Callable

from rivermon.models import fields as F


def _num(v: Any, nd: int = 2) -> str:
    if v is None:
        return "?"
    if isinstance(v, float):
        return f"{v:.{nd}f}".rstrip("0").rstrip(".") if abs(v) < 1e6 else f"{v:.3g}"
    return str(v)


def _min(s: Any) -> str:
    return _num(round((s or 0) / 60.0), 0)


def _fname(ev: dict[str, Any]) -> tuple[str, str, str]:
    f = ev.get("field", "")
    zh, en = F.name(f)
    return zh, en, F.unit(f)


def _low_do(node: str, ev: dict[str, Any]) -> tuple[str, str]:
    return (f"{node} 溶解氧低于 {_num(ev.get('threshold'))} mg/L（GB 3838 IV类下限）已 {_min(ev.get('duration_s'))} 分钟，"
            f"最低 {_num(ev.get('value'))} mg/L",
            f"DO at {node} has been below {_num(ev.get('threshold'))} mg/L (GB 3838 class IV minimum) "
            f"for {_min(ev.get('duration_s'))} min, lowest {_num(ev.get('value'))} mg/L")


def _black(node: str, ev: dict[str, Any]) -> tuple[str, str]:
    conf = ev.get("confirmed_by") or []
    band_zh = "重度黑臭" if ev.get("band") == "severe" else "轻度黑臭"
    band_en = "severe" if ev.get("band") == "severe" else "light"
    base_zh = (f"{node} 溶解氧低于 {_num(ev.get('threshold'))} mg/L 已 {_min(ev.get('duration_s'))} 分钟"
               f"（最低 {_num(ev.get('value'))} mg/L，{band_zh}溶解氧区间）")
    base_en = (f"DO at {node} has been below {_num(ev.get('threshold'))} mg/L for "
               f"{_min(ev.get('duration_s'))} min (lowest {_num(ev.get('value'))} mg/L, the {band_en} "
               f"black-odorous DO band)")
    if conf:
        names = [F.name(c) for c in conf]
        return (base_zh + "，" + "、".join(n[0] for n in names) + " 亦在黑臭区间：确认黑臭",
                base_en + "; " + ", ".join(n[1] for n in names) + " confirm it: black-odorous")
    return (base_zh + "：仅据溶解氧判断为黑臭风险",
            base_en + ": a black-odorous risk judged from DO alone (no ORP, NH3-N or transparency)")


def _discharge(node: str, ev: dict[str, Any]) -> tuple[str, str]:
    fe = ev.get("first_evidence") or {}
    parts_zh, parts_en = [], []
    if "turb" in fe:
        parts_zh.append(f"浊度升至 {_num(fe['turb'].get('value'), 1)} NTU（平时约 {_num(fe['turb'].get('baseline'), 1)}）")
        parts_en.append(f"turbidity rose to {_num(fe['turb'].get('value'), 1)} NTU "
                        f"(usually {_num(fe['turb'].get('baseline'), 1)})")
    if "do" in fe:
        parts_zh.append(f"溶解氧降至 {_num(fe['do'].get('value'))} mg/L（平时约 {_num(fe['do'].get('baseline'))}）")
        parts_en.append(f"DO fell to {_num(fe['do'].get('value'))} mg/L (usually {_num(fe['do'].get('baseline'))})")
    up = ev.get("upstream_normal") or []
    later = [a[0] for a in ev.get("arrival", [])[1:]]
    outlets = ev.get("outlets") or []
    rev = ev.get("flow") == "reversed"
    zh = f"{node} " + "、".join(parts_zh or ["水质突变"])
    en = f"At {node} " + " and ".join(parts_en or ["the water changed abruptly"])
    if up:
        zh += f"，{'下游（水流倒流）' if rev else '上游'} {'、'.join(up)} 正常"
        en += f" while {'downstream (flow reversed)' if rev else 'upstream'} {', '.join(up)} stayed normal"
    if later:
        zh += f"；随后 {'、'.join(later)} 依次受影响"
        en += f"; then {', '.join(later)} in turn"
    both = ev.get("spread_between") if ev.get("flow") == "both ways" else None
    if both:
        zh += f"；水体从 {both[0]} 与 {both[1]} 之间向两个方向扩散（水流停滞或转向）"
        en += f"; the water spread both ways from between {both[0]} and {both[1]} (slack or turning flow)"
    if outlets and ev.get("outlet_ambiguous"):
        zh += f"；排污口为 {outlets[0]} 或 {outlets[1]}（同类、同一河段，读数无法区分）"
        en += (f"; outlet {outlets[0]} or {outlets[1]} (same size, same reach: the readings cannot "
               f"tell which)")
    elif outlets:
        zh += f"；最可能的排污口：{outlets[0]}"
        en += f"; likely outlet: {outlets[0]}"
        if len(outlets) > 1:
            zh += f"（其次 {'、'.join(outlets[1:3])}）"
            en += f" (then {', '.join(outlets[1:3])})"
        if ev.get("outlet_basis") == "rise":
            zh += f"，据 {node} 浊度上升的快慢与高低判断"
            en += f", from how fast and how high turbidity rose at {node}"
    return zh, en


def _rain(node: str, ev: dict[str, Any]) -> tuple[str, str]:
    n, m = len(ev.get("nodes", [])), ev.get("reporting", 0)
    sp = _min(ev.get("onset_spread_s"))
    return (f"{n}/{m} 个节点浊度在 {sp} 分钟内同时上升，遍及全涌：判断为降雨",
            f"Turbidity rose at {n} of {m} nodes within {sp} min across the creek: rain")


def _departure(node: str, ev: dict[str, Any]) -> tuple[str, str]:
    if ev.get("fields"):
        names = [F.name(f) for f in ev["fields"]]
        return (f"{node} 的{'、'.join(n[0] for n in names)}同时偏离其日常规律",
                f"{', '.join(n[1] for n in names)} at {node} depart together from their own daily patterns")
    zh, en, u = _fname(ev)
    dzh = "偏低" if ev.get("direction") == "down" else "偏高"
    return (f"{node} 的{zh}为 {_num(ev.get('value'))} {u}，{dzh}于其日常规律（约 {_num(ev.get('baseline'))} {u}，"
            f"{_num(abs(ev.get('z') or 0), 1)} 倍典型波动）",
            f"{en} at {node} is {_num(ev.get('value'))} {u}, {'below' if ev.get('direction') == 'down' else 'above'} "
            f"its own daily pattern (about {_num(ev.get('baseline'))} {u}, "
            f"{_num(abs(ev.get('z') or 0), 1)}x the typical spread)")


def _turb(node: str, ev: dict[str, Any]) -> tuple[str, str]:
    return (f"{node} 浊度升至 {_num(ev.get('value'), 1)} NTU，平时约 {_num(ev.get('baseline'), 1)} NTU",
            f"Turbidity at {node} rose to {_num(ev.get('value'), 1)} NTU from its usual "
            f"{_num(ev.get('baseline'), 1)} NTU")


def _stuck(node: str, ev: dict[str, Any]) -> tuple[str, str]:
    zh, en, u = _fname(ev)
    return (f"{node} 的{zh}连续 {ev.get('samples')} 个读数恒为 {_num(ev.get('value'))} {u}"
            f"（{_min(ev.get('flat_s'))} 分钟）：探头疑似卡死，非水体变化",
            f"{en} at {node} has read exactly {_num(ev.get('value'))} {u} for {ev.get('samples')} readings "
            f"({_min(ev.get('flat_s'))} min): the probe looks stuck, not the water")


def _spike(node: str, ev: dict[str, Any]) -> tuple[str, str]:
    zh, en, u = _fname(ev)
    nb = ev.get("neighbours") or [None, None]
    return (f"{node} 的{zh}单个读数 {_num(ev.get('value'))} {u}，前后分别为 {_num(nb[0])} 与 {_num(nb[1])}："
            f"传感器尖峰，非水体变化",
            f"One {en} reading at {node} was {_num(ev.get('value'))} {u} between {_num(nb[0])} and "
            f"{_num(nb[1])}: a sensor spike, not the water")


def _drift(node: str, ev: dict[str, Any]) -> tuple[str, str]:
    zh, en, u = _fname(ev)
    if ev.get("source") == "own_pattern":
        return _drift_own(node, ev, zh, en, u)
    return (f"{node} 的{zh}与邻近节点 {'、'.join(ev.get('neighbours', []))} 的差值在 "
            f"{_num((ev.get('hours') or 0), 1)} 小时内缓慢变化了 {_num(ev.get('divergence'))} {u}：探头疑似漂移或污损",
            f"{en} at {node} has drifted {_num(ev.get('divergence'))} {u} away from neighbours "
            f"{', '.join(ev.get('neighbours', []))} over {_num((ev.get('hours') or 0), 1)} h: "
            f"probe drift or fouling")


def _drift_own(node: str, ev: dict[str, Any], zh: str, en: str, u: str) -> tuple[str, str]:
    up = ev.get("direction") == "up"
    edge = _num(ev.get("usual_hi") if up else ev.get("usual_lo"))
    days = _num((ev.get("hours") or 0) / 24.0, 1)
    u_ = f" {u}" if u else ""
    return (f"{node} 的{zh}已连续 {days} 天{'高于' if up else '低于'}其自身的常见范围"
            f"（{'上限' if up else '下限'} {edge}{u_}），现约 {_num(ev.get('value'))}{u_}，其他读数未随之变化："
            f"疑似校准偏移或探头污损，请检查探头",
            f"{en.capitalize() if en[:1].islower() else en} at {node} has stayed "
            f"{'above' if up else 'below'} its usual range ({'up to' if up else 'down to'} {edge}{u_}) "
            f"for {days} days, now about {_num(ev.get('value'))}{u_}, while its other readings did not "
            f"change with it: a calibration offset or fouling, check the probe")


def _range(node: str, ev: dict[str, Any]) -> tuple[str, str]:
    zh, en, u = _fname(ev)
    return (f"{node} 的{zh}读数 {_num(ev.get('value'))} {u} 超出可信范围 {_num(ev.get('lo'))}–{_num(ev.get('hi'))}",
            f"{en} at {node} read {_num(ev.get('value'))} {u}, outside the plausible "
            f"{_num(ev.get('lo'))} to {_num(ev.get('hi'))}")


def _gap(node: str, ev: dict[str, Any]) -> tuple[str, str]:
    return (f"{node} 数据中断 {_min(ev.get('gap_s'))} 分钟（阈值 {_min(ev.get('limit_s'))} 分钟）",
            f"No data from {node} for {_min(ev.get('gap_s'))} min (limit {_min(ev.get('limit_s'))} min)")


def _offline(node: str, ev: dict[str, Any]) -> tuple[str, str]:
    if ev.get("source") == "will":
        return (f"{node} 的遗嘱消息报告其已离线", f"{node}'s last will says it went offline")
    return (f"{node} 已 {_min(ev.get('silent_s'))} 分钟无数据（离线阈值 {_min(ev.get('limit_s'))} 分钟）",
            f"{node} has been silent for {_min(ev.get('silent_s'))} min "
            f"(offline after {_min(ev.get('limit_s'))} min)")


def _battery(node: str, ev: dict[str, Any]) -> tuple[str, str]:
    return (f"{node} 电池电压 {_num(ev.get('value'))} V，低于 {_num(ev.get('threshold'))} V",
            f"Battery of {node} is at {_num(ev.get('value'))} V, below {_num(ev.get('threshold'))} V")


def _aerator(node: str, ev: dict[str, Any]) -> tuple[str, str]:
    if ev.get("mode") == "no_response":
        return (f"{node} 运行中（{_num(ev.get('power_w'), 0)} W），但 {ev.get('sensor')} 的夜间溶解氧比邻段低 "
                f"{_num(ev.get('deficit'))} mg/L：曝气无效",
                f"{node} runs ({_num(ev.get('power_w'), 0)} W) but night DO at {ev.get('sensor')} is "
                f"{_num(ev.get('deficit'))} mg/L below its neighbours': the aerator transfers no oxygen")
    return (f"{node} 报告运行，但功率仅 {_num(ev.get('power_w'), 0)} W（额定 {_num(ev.get('rated_w'), 0)} W）：曝气机未工作",
            f"{node} reports running but draws only {_num(ev.get('power_w'), 0)} W "
            f"(rated {_num(ev.get('rated_w'), 0)} W): the aerator is not working")


SENTENCES: dict[str, Callable[[str, dict[str, Any]], tuple[str, str]]] = {
    "low_do": _low_do, "black_odorous": _black, "discharge": _discharge, "rain": _rain,
    "baseline_departure": _departure, "sustained_shift": _departure, "turbidity_spike": _turb,
    "sensor_stuck": _stuck, "sensor_spike": _spike, "sensor_drift": _drift,
    "sensor_out_of_range": _range, "sensor_gap": _gap, "node_offline": _offline,
    "low_battery": _battery, "aerator_fault": _aerator,
}


def sentence(kind: str, node: str, evidence: dict[str, Any]) -> dict[str, str]:
    """The one-sentence evidence of a finding, ``{"zh", "en"}``."""
    fn = SENTENCES.get(kind)
    if fn is None:
        return {"zh": f"{node}：{kind}", "en": f"{node}: {kind}"}
    try:
        zh, en = fn(node or "全涌", evidence)
    except (KeyError, TypeError, ValueError, IndexError):
        zh, en = f"{node}：{kind}", f"{node}: {kind}"
    return {"zh": zh, "en": en}
