"""Panel texts, Chinese first (zh-CN) with English; the language lives in the session."""

from __future__ import annotations

from flask import session

LANGS = ("zh", "en")

TEXT: dict[str, tuple[str, str]] = {
    "app": ("华龙涌水质监测", "Huanglong Creek monitor"),
    "nav_creek": ("河涌", "Creek"),
    "nav_inbox": ("告警", "Alerts"),
    "nav_trends": ("趋势与达标", "Trends"),
    "nav_fleet": ("设备", "Fleet"),
    "nav_users": ("用户", "Users"),
    "login": ("登录", "Log in"),
    "logout": ("退出", "Log out"),
    "user_name": ("用户名", "User name"),
    "password": ("密码", "Password"),
    "login_failed": ("用户名或密码错误", "Wrong user name or password"),
    "no_users": ("还没有账号，请在服务器上运行：", "No accounts yet; on the server run:"),
    "login_throttled": ("尝试次数过多，请稍后再试", "Too many attempts; try again later"),
    "switch_lang": ("English", "中文"),
    "status_ok": ("正常", "OK"),
    "status_warning": ("注意", "Warning"),
    "status_critical": ("严重", "Critical"),
    "status_offline": ("离线", "Offline"),
    "status_unknown": ("无数据", "No data"),
    "do": ("溶解氧", "Dissolved oxygen"),
    "do_short": ("溶氧", "DO"),
    "turbidity": ("浊度", "Turbidity"),
    "temperature": ("水温", "Temperature"),
    "battery": ("电池", "Battery"),
    "updated": ("更新", "Updated"),
    "open_alerts": ("未结告警", "Open alerts"),
    "legend": ("图例", "Legend"),
    "outlet_large": ("大排口", "Large outlet"),
    "outlet_small": ("小排口", "Small outlet"),
    "sensor_node": ("监测节点", "Sensor node"),
    "aerator": ("曝气机", "Aerator"),
    "aerator_on": ("运行", "On"),
    "aerator_off": ("停止", "Off"),
    "flow": ("水流方向", "Normal flow"),
    "illustrative": ("示意位置，非测绘", "Illustrative positions, not a survey"),
    "live": ("实时", "Live"),
    "reconnecting": ("连接中断，正在重连…", "Connection lost, reconnecting…"),
    "segment": ("河段", "Segment"),
    "node": ("节点", "Node"),
    "kind": ("类型", "Kind"),
    "severity": ("级别", "Severity"),
    "state": ("状态", "State"),
    "start": ("开始", "Start"),
    "end": ("结束", "End"),
    "age": ("距今", "Age"),
    "value": ("数值", "Value"),
    "sev_critical": ("严重", "Critical"),
    "sev_warning": ("警告", "Warning"),
    "sev_info": ("提示", "Info"),
    "state_open": ("待处理", "Open"),
    "state_acknowledged": ("已确认", "Acknowledged"),
    "state_resolved": ("已解决", "Resolved"),
    "acknowledge": ("确认", "Acknowledge"),
    "resolve": ("解决", "Resolve"),
    "add_note": ("备注", "Add note"),
    "note_placeholder": ("写备注（可选）", "Write a note (optional)"),
    "water_event": ("水体事件", "Water event"),
    "equipment_fault": ("设备故障", "Equipment fault"),
    "all": ("全部", "All"),
    "filter": ("筛选", "Filter"),
    "no_alerts": ("没有待处理的告警", "No open alerts"),
    "evidence": ("依据", "Evidence"),
    "acknowledged_by": ("确认人", "Acknowledged by"),
    "resolved_by": ("解决人", "Resolved by"),
    "notes": ("备注", "Notes"),
    "latest": ("最新读数", "Latest readings"),
    "chart_24h": ("24 小时", "24 h"),
    "chart_7d": ("7 天", "7 d"),
    "recent_commands": ("最近指令", "Recent commands"),
    "aerators": ("曝气设备", "Aerators"),
    "power": ("功率", "Power"),
    "rated": ("额定", "Rated"),
    "trends": ("趋势", "Trends"),
    "compliance": ("溶解氧分类占比（按样本）", "DO class shares (of samples)"),
    "field": ("指标", "Field"),
    "range": ("时段", "Range"),
    "compare": ("对比时段", "Compare with"),
    "show": ("显示", "Show"),
    "csv_series": ("导出数据 CSV", "Series CSV"),
    "csv_alerts": ("导出告警 CSV", "Alerts CSV"),
    "alert_stats": ("告警统计", "Alert statistics"),
    "count": ("数量", "Count"),
    "time_to_ack": ("平均确认用时", "Mean time to acknowledge"),
    "time_to_resolve": ("平均解决用时", "Mean time to resolve"),
    "period_a": ("时段 A", "Period A"),
    "period_b": ("时段 B", "Period B"),
    "samples": ("样本数", "Samples"),
    "fleet": ("设备状态", "Fleet"),
    "last_seen": ("最后上报", "Last seen"),
    "online": ("在线", "Online"),
    "offline": ("离线", "Offline"),
    "seq_gaps": ("序号缺口(24h)", "Seq gaps (24 h)"),
    "rejects": ("拒收消息(24h)", "Rejected messages (24 h)"),
    "reason": ("原因", "Reason"),
    "unregistered": ("未登记节点", "Unregistered nodes"),
    "firmware": ("固件", "Firmware"),
    "users": ("用户管理", "Users"),
    "role": ("角色", "Role"),
    "add_user": ("添加用户", "Add user"),
    "delete": ("删除", "Delete"),
    "save": ("保存", "Save"),
    "role_viewer": ("查看者", "Viewer"),
    "role_cleaner": ("保洁员", "Cleaner"),
    "role_operator": ("运维", "Operator"),
    "role_admin": ("管理员", "Admin"),
    "detail": ("详情", "Detail"),
    "back": ("返回", "Back"),
    "none": ("无", "None"),
    "turn_on": ("开启", "Turn on"),
    "turn_off": ("关闭", "Turn off"),
    "mode": ("模式", "Mode"),
    "aer_micropore": ("微孔曝气", "micro-pore"),
    "aer_fountain": ("喷泉曝气", "fountain"),
    "mode_auto": ("自动", "Auto"),
    "mode_fallback": ("按计划（溶氧未知）", "Schedule (DO unknown)"),
    "mode_dry-run": ("试运行（不下发）", "Dry run (not sent)"),
    "mode_manual_on": ("手动开", "Manual on"),
    "mode_manual_off": ("手动关", "Manual off"),
    "until": ("至", "until"),
    "by": ("操作人", "by"),
    "last_command": ("最近指令", "Last command"),
    "set_auto": ("恢复自动", "Back to auto"),
    "duration": ("时长", "For"),
    "dur_30": ("30 分钟", "30 min"),
    "dur_120": ("2 小时", "2 h"),
    "dur_480": ("8 小时", "8 h"),
    "manual_orders": ("人工操作记录", "Manual orders"),
    "controller_off": ("自动控制器未运行：按钮直接下发指令", "The controller is not running: buttons send commands directly"),
    "order_saved": ("已记录", "Order recorded"),
    "mins_ago": ("分钟前", "min ago"),
    "hours_ago": ("小时前", "h ago"),
    "days_ago": ("天前", "d ago"),
    "just_now": ("刚刚", "just now"),
    "day": ("1 天", "1 day"),
    "week": ("1 周", "1 week"),
    "month": ("1 月", "1 month"),
    "quarter": ("3 月", "3 months"),
    "year": ("1 年", "1 year"),
    "error": ("出错了", "Something went wrong"),
    "forbidden": ("没有权限", "Not allowed"),
    "not_found": ("找不到", "Not found"),
    "done": ("已完成", "Done"),
    "by": ("由", "by"),
    "compliance_note": ("此处为样本占比，可比较任意两个时段；正式的按小时达标统计见",
                        "Shares of samples, for any two periods; the official hour counts are in the"),
    "monthly_report": ("月度达标报告", "Monthly compliance report"),
    "month": ("月份", "Month"),
    "format": ("格式", "Format"),
    "printable": ("可打印", "printable"),
    "workorders": ("巡河工单导出（近 30 天）", "Patrol work orders (last 30 days)"),
    "nav_report": ("报告", "Reports"),
}


FIELD_NAMES: dict[str, tuple[str, str]] = {
    "do_mg_l": ("溶解氧 mg/L", "Dissolved oxygen mg/L"),
    "do_sat_pct": ("溶解氧饱和度 %", "DO saturation %"),
    "turbidity_ntu": ("浊度 NTU", "Turbidity NTU"),
    "temp_c": ("水温 °C", "Water temperature °C"),
    "battery_v": ("电池电压 V", "Battery V"),
    "power_w": ("功率 W", "Power W"),
    "rssi_dbm": ("信号强度 dBm", "Signal dBm"),
    "orp_mv": ("氧化还原电位 mV", "ORP mV"),
    "nh3n_mg_l": ("氨氮 mg/L", "NH3-N mg/L"),
    "transparency_cm": ("透明度 cm", "Transparency cm"),
}


def field_label(name: str) -> str:
    """A measurement's display name (its raw name when unknown)."""
    pair = FIELD_NAMES.get(name)
    return name if pair is None else (pair[0] if lang() == "zh" else pair[1])


def lang() -> str:
    value = session.get("lang", "zh")
    return value if value in LANGS else "zh"


def t(key: str) -> str:
    """The text for ``key`` in the session's language (the key itself when unknown)."""
    pair = TEXT.get(key)
    if pair is None:
        return key
    return pair[0] if lang() == "zh" else pair[1]


def pick(name: dict[str, str] | None) -> str:
    """The session language's entry of a ``{"zh", "en"}`` pair."""
    if not name:
        return ""
    return name.get(lang()) or name.get("zh") or name.get("en") or ""


def js_texts() -> dict[str, str]:
    """The texts the scripts need, in the session's language."""
    return {k: t(k) for k in TEXT}
