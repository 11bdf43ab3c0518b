"""rivermon.control: aeration control of the creek's aerators from its dissolved oxygen.

See docs/aeration.md. :mod:`.policy` decides (pure), :mod:`.service` runs it live over MQTT,
:mod:`.store` keeps the command log and manual overrides for the panel, :mod:`.evaluate`
measures the energy saving in the simulator.
"""
