"""Deterministic synthetic IMU recordings: users x devices x the six HHAR activities.

A stand-in for HHAR (Stisen et al., SenSys 2015) for tests, the demo and benchmarks. Each
user does each activity once (a *session*); every device the user carries records that
session, as in HHAR, so the devices of one session share the gait timeline and the speed.

The signal is built from physics, not from class templates:

- A body segment (thigh for phones in a trouser pocket, forearm for watches) has a pitch,
  roll and yaw that follow the activity: static postures differ by the segment's pitch
  (standing thigh vertical, sitting thigh horizontal) plus a little postural sway and
  tremor; walking and stairs swing the segment at the stride frequency (half the step
  frequency) with impacts at every step (a von Mises pulse whose sharpness depends on the
  activity and the user); biking turns the thigh smoothly at the pedalling cadence and adds
  road vibration that grows with speed.
- The accelerometer measures specific force (gravity included, |a| ~ 9.81 m/s^2 at rest)
  rotated into the device frame, plus the tangential and centripetal acceleration of the
  swinging segment; the gyroscope measures the segment's angular velocity.
- Each user has a gait: cadence, step length, impact strength, sharpness, left/right
  asymmetry, extra harmonics, swing amplitudes, posture angles, pedalling cadence and gear,
  tremor frequency, and a way of wearing each device (a small rotation, and for pockets
  whether the screen faces the leg).
- Each device model has nominal sampling rates, clock jitter, noise and a drop rate
  (`DEVICE_MODELS`); each device instance ("nexus4_1") has its own bias, scale error, clock
  rate error and acc/gyro clock offsets, so acc and gyro samples never share timestamps.

The regression target is the locomotion speed in m/s (`TARGET_NAME`): 0 for sit and stand,
cadence x step length for walking and stairs, cadence x gear development for biking; impact
and vibration amplitudes grow with it.

Seeding: every random draw comes from a generator keyed by ``(seed, kind, names...)`` through
a stable hash, so adding a user, a device or an activity leaves the other recordings
bit-identical, and the same spec always gives the same output.

Knobs: the `SyntheticSpec` fields; `DEVICE_MODELS` (add a model with
``DEVICE_MODELS["mydev"] = DeviceModel(...)``, then use device "mydev_1"). How hard the tasks
are is set by the spread of the user traits (`_user_traits`, `_mount`) against the distance
between the activity templates (`_GAITS`, `_POSTURES`).

```python
from deepsense.data.synthetic import SyntheticSpec, make_recordings
recordings = make_recordings(SyntheticSpec(n_users=3, devices=("nexus4_1", "gear_1"),
                                           seconds_per_activity=30.0, seed=0))
```
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from deepsense.data.recording import Recording, SensorStream

#: HHAR activities, in class order.
ACTIVITIES = ("bike", "sit", "stand", "walk", "stairsup", "stairsdown")

#: Name of the regression target stored in `Recording.target`.
TARGET_NAME = "speed_m_s"

_GRAVITY_M_S2 = 9.81
_SENSORS = ("acc", "gyro")
_BLOCK = 1 << 15          # samples per block of signal computation


@dataclass(frozen=True)
class DeviceModel:
    """Sampling and noise of one device model.

    Attributes:
        acc_rate_hz: nominal accelerometer sampling rate.
        gyro_rate_hz: nominal gyroscope sampling rate.
        jitter: standard deviation of a sample interval, relative to the nominal interval.
        acc_noise_m_s2: white noise standard deviation of each acc axis.
        gyro_noise_rad_s: white noise standard deviation of each gyro axis.
        drop_prob: probability that a sample is lost.
        placement: where the device is worn: "pocket" (thigh) or "wrist".
    """

    acc_rate_hz: float
    gyro_rate_hz: float
    jitter: float
    acc_noise_m_s2: float
    gyro_noise_rad_s: float
    drop_prob: float
    placement: str


#: HHAR's device families with their nominal rates (Stisen et al.); the s3's gyro runs faster
#: than its accelerometer so that acc/gyro alignment is exercised. Phones sit in a trouser
#: pocket, watches on the wrist.
DEVICE_MODELS: dict[str, DeviceModel] = {
    "nexus4": DeviceModel(200.0, 200.0, 0.06, 0.03, 0.004, 0.002, "pocket"),
    "s3": DeviceModel(150.0, 200.0, 0.10, 0.04, 0.005, 0.004, "pocket"),
    "s3mini": DeviceModel(100.0, 100.0, 0.12, 0.05, 0.007, 0.005, "pocket"),
    "samsungold": DeviceModel(50.0, 50.0, 0.18, 0.08, 0.010, 0.010, "pocket"),
    "gear": DeviceModel(100.0, 100.0, 0.10, 0.05, 0.006, 0.005, "wrist"),
    "lgwatch": DeviceModel(200.0, 200.0, 0.08, 0.04, 0.005, 0.004, "wrist"),
}


@dataclass(frozen=True)
class SyntheticSpec:
    """What to generate: one recording per user x device x activity.

    Attributes:
        n_users: users, named "a", "b", ... "z", "aa", "ab", ... (HHAR has "a".."i").
        devices: device ids "<model>_<instance>", model in `DEVICE_MODELS`.
        activities: subset of `ACTIVITIES`.
        seconds_per_activity: length of each recording in seconds.
        n_gaps: gaps (no samples from either sensor) inserted in each recording, so that
            windows have masked intervals as in real logs.
        max_gap_s: longest gap; gap lengths are uniform in [max_gap_s / 4, max_gap_s].
        seed: non-negative integer; the same spec gives bit-identical recordings.
    """

    n_users: int = 9
    devices: tuple[str, ...] = ("nexus4_1", "s3_1", "gear_1")
    activities: tuple[str, ...] = ACTIVITIES
    seconds_per_activity: float = 60.0
    n_gaps: int = 2
    max_gap_s: float = 1.5
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "devices", tuple(self.devices))
        object.__setattr__(self, "activities", tuple(self.activities))
        for name in ("n_users", "n_gaps", "seed"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < (name == "n_users"):
                bound = "a positive" if name == "n_users" else "a non-negative"
                raise ValueError(f"{name} expected {bound} integer. Received: {name}={value!r}")
            object.__setattr__(self, name, int(value))
        if not self.devices or len(set(self.devices)) != len(self.devices):
            raise ValueError(f"devices expected distinct ids. Received: devices={self.devices}")
        for device in self.devices:
            device_model(device)
        unknown = [a for a in self.activities if a not in ACTIVITIES]
        if not self.activities or unknown or len(set(self.activities)) != len(self.activities):
            raise ValueError(f"activities expected distinct names from {ACTIVITIES}. "
                             f"Received: activities={self.activities}")
        if not self.seconds_per_activity > 0:
            raise ValueError("seconds_per_activity expected > 0. "
                             f"Received: seconds_per_activity={self.seconds_per_activity}")
        if not self.max_gap_s > 0 or self.n_gaps * self.max_gap_s > self.seconds_per_activity / 2:
            raise ValueError(
                "max_gap_s expected > 0 and n_gaps * max_gap_s <= seconds_per_activity / 2. "
                f"Received: n_gaps={self.n_gaps}, max_gap_s={self.max_gap_s}, "
                f"seconds_per_activity={self.seconds_per_activity}")

    @property
    def users(self) -> tuple[str, ...]:
        """User names, in order."""
        return tuple(_user_name(i) for i in range(self.n_users))


def device_model(device: str) -> str:
    """Model name of a device id ("nexus4_1" -> "nexus4"); ValueError if unknown."""
    model = device.rsplit("_", 1)[0]
    if model not in DEVICE_MODELS:
        raise ValueError(f"device expected '<model>_<instance>' with model in "
                         f"{sorted(DEVICE_MODELS)}. Received: device={device!r}")
    return model


def make_recordings(spec: SyntheticSpec) -> list[Recording]:
    """All recordings of `spec`, ordered by user, then device, then activity."""
    return [make_recording(spec, user, device, activity)
            for user in spec.users for device in spec.devices for activity in spec.activities]


def make_recording(spec: SyntheticSpec, user: str, device: str, activity: str) -> Recording:
    """One device's recording of one user doing one activity.

    Depends only on ``(spec.seed, spec.seconds_per_activity, spec.n_gaps, spec.max_gap_s)``
    and the three names, so recordings can be generated one at a time (large benchmarks).

    Returns:
        Recording with acc (m/s^2, gravity included) and gyro (rad/s) streams of shape (n, 3)
        on the device clock (seconds), label = activity, target = speed in m/s.
    """
    if activity not in ACTIVITIES:
        raise ValueError(f"activity expected one of {ACTIVITIES}. Received: activity={activity!r}")
    model = DEVICE_MODELS[device_model(device)]
    traits = _user_traits(spec.seed, user)
    session = _make_session(spec.seed, user, activity, traits)
    limb = _make_limb(spec.seed, user, activity, model.placement, traits)
    mount = _mount(spec.seed, user, device, model.placement)
    instance = _instance(spec.seed, device)
    duration_s = float(spec.seconds_per_activity)
    clock_rng = _rng(spec.seed, "clock", user, device, activity)
    gaps = _gaps(clock_rng, duration_s, spec.n_gaps, spec.max_gap_s)
    start_s = ACTIVITIES.index(activity) * (duration_s + 60.0) + instance["clock_offset_s"]
    streams = {}
    for sensor in _SENSORS:
        rate_hz = model.acc_rate_hz if sensor == "acc" else model.gyro_rate_hz
        rate_hz *= 1.0 + instance["rate_error"]
        first_s = instance[f"{sensor}_offset_s"] + clock_rng.uniform(0.0, 1.0 / rate_hz)
        tau_s = _sample_times(clock_rng, first_s, duration_s, rate_hz,
                              model.jitter * instance["jitter_scale"], model.drop_prob, gaps)
        vibration = None
        if sensor == "acc" and session.vibration_m_s2 > 0:
            rms_m_s2 = np.array([0.5, 0.5, 1.0]) * (session.vibration_m_s2 * limb.vib_gain)
            vibration = _band_noise(clock_rng, tau_s.shape[0], rate_hz, (6.0, 22.0), rms_m_s2)
        body = np.concatenate([   # in blocks that stay in cache: 3x faster on long recordings
            _segment_signals(tau_s[i:i + _BLOCK], session, limb, sensor,
                             None if vibration is None else vibration[i:i + _BLOCK])
            for i in range(0, max(tau_s.shape[0], 1), _BLOCK)])
        noise = model.acc_noise_m_s2 if sensor == "acc" else model.gyro_noise_rad_s
        values = (body @ mount) * instance[f"{sensor}_scale"] + instance[f"{sensor}_bias"]
        values += clock_rng.standard_normal(values.shape) * (noise * instance["noise_scale"])
        streams[sensor] = SensorStream(start_s + tau_s, values)
    return Recording(device=device, streams=streams, user=user, label=activity,
                     target=session.speed_m_s, source="synthetic")


# --- seeding -------------------------------------------------------------------------------

def _rng(seed: int, *names: str) -> np.random.Generator:
    """A generator keyed by the seed and names (stable across runs and Python versions)."""
    words = [seed] + [int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(),
                                     "little") for name in names]
    return np.random.default_rng(np.random.SeedSequence(words))


def _user_name(index: int) -> str:
    """0 -> "a", 25 -> "z", 26 -> "aa" (spreadsheet columns)."""
    name = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        name = chr(ord("a") + rest) + name
    return name


# --- people and devices --------------------------------------------------------------------

def _user_traits(seed: int, user: str) -> dict[str, np.ndarray | float]:
    """A user's gait and posture (drawn in a fixed order, independent of the spec)."""
    rng = _rng(seed, "user", user)
    return {
        "cadence_hz": rng.uniform(1.65, 2.0),          # walking steps per second
        "step_m": rng.uniform(0.62, 0.80),              # walking step length
        "impact": rng.lognormal(0.0, 0.25),             # impact strength multiplier
        "sharpness": rng.lognormal(0.0, 0.3),           # heel-strike sharpness multiplier
        "asym": rng.uniform(0.05, 0.35),                # left/right step asymmetry
        "asym_phase": rng.uniform(0.0, 2 * np.pi),
        "harm_ratio": rng.uniform(0.05, 0.3, size=3),   # extra step harmonics 1..3
        "harm_phase": rng.uniform(0.0, 2 * np.pi, size=3),
        "fwd_phase": rng.uniform(-0.6, 0.6),            # forward surge vs vertical impact
        "lat_phase": rng.uniform(-0.6, 0.6),
        "swing": rng.lognormal(0.0, 0.2),               # segment swing multiplier
        "swing_h2": rng.uniform(0.0, 0.25),             # second harmonic of the swing
        "swing_h2_phase": rng.uniform(0.0, 2 * np.pi),
        # Posture per (placement, activity): how this user sits, stands, leans, crosses legs.
        "pitch_offset_rad": np.deg2rad(rng.normal(0.0, 7.0, size=(2, len(ACTIVITIES)))),
        "roll_offset_rad": np.deg2rad(rng.normal(0.0, 6.0, size=(2, len(ACTIVITIES)))),
        "sway": rng.lognormal(0.0, 0.4),                # postural sway multiplier
        "up_ratio": rng.uniform(0.72, 0.84),            # stairs-up cadence / walking cadence
        "down_ratio": rng.uniform(1.06, 1.18),          # stairs-down cadence / walking cadence
        "pedal_hz": rng.uniform(0.9, 1.4),              # pedal revolutions per second
        "development_m": rng.uniform(3.8, 5.2),         # metres per pedal revolution (gear)
        "tremor_hz": rng.uniform(8.0, 11.0),
        "tremor_rad": rng.uniform(0.0004, 0.0012),
    }


def _rotation(angles_rad: np.ndarray) -> np.ndarray:
    """(3, 3) rotation Rz @ Ry @ Rx from angles (x, y, z) in radians."""
    (cx, cy, cz), (sx, sy, sz) = np.cos(angles_rad), np.sin(angles_rad)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


#: Device axes (columns) in segment coordinates (x lateral, y forward, z along the segment
#: towards the body): a phone upright in a pocket, a watch with x towards the hand.
_BASE_MOUNTS = {
    "pocket": np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]]),
    "wrist": np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]]),
}


def _mount(seed: int, user: str, device: str, placement: str) -> np.ndarray:
    """(3, 3) device axes in segment coordinates: how this user wears this device."""
    rng = _rng(seed, "mount", user, device)
    tilt = _rotation(np.deg2rad(rng.normal(0.0, 12.0, size=3)))
    flip = rng.random() < 0.5 and placement == "pocket"       # screen facing the leg
    turn = _rotation(np.array([0.0, np.pi, 0.0])) if flip else np.eye(3)
    return tilt @ _BASE_MOUNTS[placement] @ turn


def _instance(seed: int, device: str) -> dict[str, np.ndarray | float]:
    """Imperfections of one physical device (shared by every user who carries it)."""
    rng = _rng(seed, "device", device)
    return {
        "clock_offset_s": rng.uniform(0.0, 10.0),
        "rate_error": rng.normal(0.0, 0.005),
        "jitter_scale": rng.uniform(0.8, 1.2),
        "noise_scale": rng.uniform(0.8, 1.3),
        "acc_offset_s": 0.0,
        "gyro_offset_s": rng.uniform(0.001, 0.008),
        "acc_bias": rng.normal(0.0, 0.08, size=3),
        "gyro_bias": rng.normal(0.0, 0.006, size=3),
        "acc_scale": 1.0 + rng.normal(0.0, 0.01, size=3),
        "gyro_scale": 1.0 + rng.normal(0.0, 0.01, size=3),
    }


# --- activities ----------------------------------------------------------------------------

@dataclass(frozen=True)
class _Gait:
    """Body motion of one activity: impacts per step (von Mises pulse) and their reference."""

    cycles: bool             # the segment moves periodically (walk, stairs, bike)
    pedalling: bool          # smooth rotation at the pedal frequency, no impacts
    impact_m_s2: float       # vertical impact amplitude at the reference speed
    ref_speed_m_s: float
    sharpness: float         # von Mises concentration of the heel-strike pulse
    fwd_ratio: float         # forward surge / vertical impact
    lat_ratio: float         # lateral sway / vertical impact


_GAITS = {
    "bike": _Gait(True, True, 0.0, 5.0, 0.0, 0.0, 0.0),
    "sit": _Gait(False, False, 0.0, 1.0, 0.0, 0.0, 0.0),
    "stand": _Gait(False, False, 0.0, 1.0, 0.0, 0.0, 0.0),
    "walk": _Gait(True, False, 2.6, 1.3, 2.5, 0.6, 0.35),
    "stairsup": _Gait(True, False, 2.0, 0.49, 1.2, 0.35, 0.45),
    "stairsdown": _Gait(True, False, 3.4, 0.67, 6.0, 0.45, 0.4),
}

#: Typical walking step length in metres.
_WALK_STEP_M = 0.71

#: Stairs: metres along the flight per step (0.29 m tread, 0.17 m riser).
_STAIR_STEP_M = float(np.hypot(0.29, 0.17))

#: (placement, activity) -> segment pitch (deg), swing (deg), roll swing (deg), yaw swing
#: (deg), sway (deg), impact gain, vibration gain. Pitch 0: thigh or forearm vertical. Thigh
#: flexion follows gait studies: about -10..30 deg walking, 0..60 stairs up, 0..30 down.
_POSTURES = {
    ("pocket", "bike"): (50.0, 22.0, 3.0, 2.0, 0.5, 0.0, 1.0),
    ("pocket", "sit"): (85.0, 0.0, 0.0, 0.0, 0.4, 0.0, 0.0),
    ("pocket", "stand"): (0.0, 0.0, 0.0, 0.0, 1.2, 0.0, 0.0),
    ("pocket", "walk"): (8.0, 22.0, 5.0, 6.0, 1.0, 1.0, 0.0),
    ("pocket", "stairsup"): (30.0, 32.0, 5.0, 4.0, 1.0, 0.9, 0.0),
    ("pocket", "stairsdown"): (15.0, 14.0, 5.0, 6.0, 1.0, 1.1, 0.0),
    ("wrist", "bike"): (70.0, 3.0, 2.0, 2.0, 1.0, 0.0, 1.6),
    ("wrist", "sit"): (65.0, 0.0, 0.0, 0.0, 0.8, 0.0, 0.0),
    ("wrist", "stand"): (5.0, 0.0, 0.0, 0.0, 1.5, 0.0, 0.0),
    ("wrist", "walk"): (5.0, 20.0, 6.0, 8.0, 1.5, 0.6, 0.0),
    ("wrist", "stairsup"): (20.0, 10.0, 4.0, 4.0, 2.0, 0.5, 0.0),
    ("wrist", "stairsdown"): (12.0, 12.0, 5.0, 6.0, 2.0, 0.7, 0.0),
}

#: Distance from the segment's pivot (hip, shoulder) to the device, in metres.
_RADII_M = {"pocket": 0.25, "wrist": 0.55}


@dataclass(frozen=True)
class _Session:
    """One user doing one activity; shared by every device the user carries."""

    gait: _Gait
    speed_m_s: float
    cycle_hz: float          # step frequency (walk, stairs) or pedal frequency (bike)
    stride_scale: float      # step length / typical step length: scales the leg and arm swing
    phase0: float
    fm_hz: np.ndarray        # (k,) slow cadence modulation: frequencies,
    fm_cycles: np.ndarray    # (k, 1) amplitudes in cycles of the step phase,
    fm_phase: np.ndarray     # (k, 1) phases
    impact_m_s2: float
    sharpness: float
    vibration_m_s2: float    # RMS of the vertical road vibration (bike)
    traits: dict


@dataclass(frozen=True)
class _Limb:
    """How the device's body segment moves in one session."""

    pitch0_rad: float
    roll0_rad: float
    swing_rad: float
    roll_rad: float
    yaw_rad: float
    impact_gain: float
    vib_gain: float
    radius_m: float
    sway_hz: np.ndarray      # (k,)
    sway_rad: np.ndarray     # (k, 3) pitch, roll, yaw
    sway_phase: np.ndarray   # (k, 3)
    tremor_hz: float
    tremor_rad: float
    tremor_phase: float


def _make_session(seed: int, user: str, activity: str, traits: dict) -> _Session:
    rng = _rng(seed, "session", user, activity)
    gait = _GAITS[activity]
    pace = rng.uniform(0.92, 1.08, size=2)             # cadence and stride of this session
    cadence_hz = traits["cadence_hz"] * pace[0]
    stride_scale = 1.0
    if activity == "walk":
        step_m = traits["step_m"] * pace[1]
        cycle_hz, speed, stride_scale = cadence_hz, cadence_hz * step_m, step_m / _WALK_STEP_M
    elif activity in ("stairsup", "stairsdown"):
        cycle_hz = cadence_hz * traits["up_ratio" if activity == "stairsup" else "down_ratio"]
        speed = cycle_hz * _STAIR_STEP_M
    elif activity == "bike":
        cycle_hz = traits["pedal_hz"] * pace[0]
        speed = cycle_hz * traits["development_m"] * pace[1]
    else:
        cycle_hz, speed = 0.0, 0.0
    fm_hz = rng.uniform(0.02, 0.2, size=3)
    fm_rel = rng.uniform(0.0, 0.012, size=3)           # relative cadence deviation
    relative_speed = speed / gait.ref_speed_m_s
    return _Session(
        gait=gait, speed_m_s=float(speed), cycle_hz=float(cycle_hz), stride_scale=stride_scale,
        phase0=rng.uniform(0.0, 2 * np.pi), fm_hz=fm_hz,
        fm_cycles=(cycle_hz * fm_rel / fm_hz)[:, None],
        fm_phase=rng.uniform(0.0, 2 * np.pi, size=(3, 1)),
        impact_m_s2=gait.impact_m_s2 * traits["impact"] * relative_speed ** 1.5,
        sharpness=gait.sharpness * traits["sharpness"],
        vibration_m_s2=0.6 * relative_speed ** 1.5 if gait.pedalling else 0.0, traits=traits)


def _make_limb(seed: int, user: str, activity: str, placement: str, traits: dict) -> _Limb:
    rng = _rng(seed, "limb", user, activity, placement)
    pitch_deg, swing_deg, roll_deg, yaw_deg, sway_deg, impact_gain, vib_gain = _POSTURES[
        (placement, activity)]
    pitch, swing, roll, yaw, sway = np.deg2rad([pitch_deg, swing_deg, roll_deg, yaw_deg, sway_deg])
    posture = (0 if placement == "pocket" else 1, ACTIVITIES.index(activity))
    sway_hz = rng.uniform(0.08, 0.6, size=4)
    sway_rad = rng.rayleigh(1.0, size=(4, 3))
    sway_rad *= sway * traits["sway"] / np.sqrt(0.5 * np.sum(sway_rad ** 2, axis=0))
    return _Limb(
        pitch0_rad=pitch + traits["pitch_offset_rad"][posture],
        roll0_rad=traits["roll_offset_rad"][posture], swing_rad=swing * traits["swing"],
        roll_rad=roll * traits["swing"], yaw_rad=yaw * traits["swing"],
        impact_gain=impact_gain, vib_gain=vib_gain, radius_m=_RADII_M[placement],
        sway_hz=sway_hz, sway_rad=sway_rad, sway_phase=rng.uniform(0.0, 2 * np.pi, size=(4, 3)),
        tremor_hz=traits["tremor_hz"],
        tremor_rad=traits["tremor_rad"] * (1.0 if placement == "wrist" else 0.5),
        tremor_phase=rng.uniform(0.0, 2 * np.pi))


# --- signals -------------------------------------------------------------------------------

#: Grid step for slow components (sway, cadence drift, all below 1 Hz), interpolated linearly.
_SLOW_GRID_S = 0.05


def _slow_sines(t_s: np.ndarray, freq_hz: np.ndarray, amp: np.ndarray,
                phase: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sum of slow sinusoids and its time derivative, at sorted times.

    Evaluated exactly on a fixed grid (multiples of `_SLOW_GRID_S`) and interpolated, which
    costs O(n) instead of O(n k) transcendental functions.

    Args:
        t_s: (n,) sorted times >= 0.
        freq_hz: (k,) frequencies, well below 1 / `_SLOW_GRID_S`.
        amp, phase: (k, m) amplitudes and phases of m independent channels.

    Returns:
        value, derivative: (n, m).
    """
    if t_s.size == 0:
        return np.zeros((0, amp.shape[1])), np.zeros((0, amp.shape[1]))
    grid = np.arange(int(t_s[0] / _SLOW_GRID_S), int(t_s[-1] / _SLOW_GRID_S) + 2) * _SLOW_GRID_S
    arg = 2 * np.pi * grid[:, None] * freq_hz[None, :]                  # (g, k)
    sin_arg, cos_arg = np.sin(arg), np.cos(arg)
    cos_p, sin_p = np.cos(phase), np.sin(phase)
    value = sin_arg @ (amp * cos_p) + cos_arg @ (amp * sin_p)            # sin(arg + phase)
    rate = (2 * np.pi * freq_hz)[:, None] * amp
    derivative = cos_arg @ (rate * cos_p) - sin_arg @ (rate * sin_p)
    return tuple(np.stack([np.interp(t_s, grid, column) for column in table.T], axis=1)
                 for table in (value, derivative))


def _band_noise(rng: np.random.Generator, n: int, rate_hz: float, band_hz: tuple[float, float],
                rms: np.ndarray) -> np.ndarray:
    """(n, m) noise in a frequency band (for samples at about `rate_hz`), with RMS `rms` (m,)."""
    if n < 2:
        return np.zeros((n, rms.shape[0]))
    spectrum = np.fft.rfft(rng.standard_normal((n, rms.shape[0])), axis=0)
    freq_hz = np.fft.rfftfreq(n, 1.0 / rate_hz)
    spectrum[(freq_hz < band_hz[0]) | (freq_hz > band_hz[1])] = 0.0
    noise = np.fft.irfft(spectrum, n, axis=0)
    return noise * (rms / np.maximum(noise.std(axis=0), 1e-12))


def _shifted(sin_x: np.ndarray, cos_x: np.ndarray, shift: float) -> tuple[np.ndarray, np.ndarray]:
    """sin(x + shift), cos(x + shift) from sin x and cos x."""
    cos_s, sin_s = np.cos(shift), np.sin(shift)
    return sin_x * cos_s + cos_x * sin_s, cos_x * cos_s - sin_x * sin_s


def _pulse(cos_phase: np.ndarray, sharpness: float) -> np.ndarray:
    """Periodic von Mises pulse peaking at phase 0, zero mean and unit RMS over a cycle."""
    ref = np.exp(sharpness * (np.cos(np.linspace(0.0, 2 * np.pi, 256, endpoint=False)) - 1.0))
    return (np.exp(sharpness * (cos_phase - 1.0)) - ref.mean()) / ref.std()


def _segment_signals(tau_s: np.ndarray, session: _Session, limb: _Limb, sensor: str,
                     vibration: np.ndarray | None = None) -> np.ndarray:
    """What a sensor fixed to the device's body segment measures, at session times.

    Args:
        tau_s: (n,) sorted seconds since the session started.
        sensor: "acc" or "gyro".
        vibration: (n, 3) road vibration in m/s^2 (heading frame: lateral, forward, up), or None.

    Returns:
        (n, 3) in segment coordinates (x lateral, y forward, z along the segment): specific
        force in m/s^2 (acc) or the rotation rates about those axes in rad/s (gyro).
    """
    n = tau_s.shape[0]
    gait, traits = session.gait, session.traits
    sway, sway_rate = _slow_sines(tau_s, limb.sway_hz, limb.sway_rad, limb.sway_phase)
    tremor_arg = 2 * np.pi * limb.tremor_hz * tau_s + limb.tremor_phase
    pitch = limb.pitch0_rad + sway[:, 0] + limb.tremor_rad * np.sin(tremor_arg)
    pitch_rate = sway_rate[:, 0] + 2 * np.pi * limb.tremor_hz * limb.tremor_rad * np.cos(tremor_arg)
    roll, roll_rate, yaw_rate = limb.roll0_rad + sway[:, 1], sway_rate[:, 1], sway_rate[:, 2]
    pitch_acc = np.zeros(n)
    body = np.zeros((n, 3))                                   # heading frame: lateral, forward, up
    body[:, 2] = _GRAVITY_M_S2
    if vibration is not None:
        body += vibration
    if gait.cycles:
        drift, drift_rate = _slow_sines(tau_s, session.fm_hz, session.fm_cycles, session.fm_phase)
        phase = session.phase0 + 2 * np.pi * (session.cycle_hz * tau_s + drift[:, 0])
        phase_rate = 2 * np.pi * (session.cycle_hz + drift_rate[:, 0])
        # The segment swings once per pedal revolution, or once per stride (two steps).
        swing_phase, swing_rate = phase, phase_rate
        if not gait.pedalling:
            swing_phase, swing_rate = phase / 2, phase_rate / 2
        sin1, cos1 = np.sin(swing_phase), np.cos(swing_phase)
        sin2, cos2 = 2 * sin1 * cos1, 2 * cos1 ** 2 - 1       # of 2 * swing_phase
        h2, swing_rad = traits["swing_h2"], limb.swing_rad * session.stride_scale
        sin2q, cos2q = _shifted(sin2, cos2, traits["swing_h2_phase"])
        pitch = pitch + swing_rad * (sin1 + h2 * sin2q)
        pitch_rate = pitch_rate + swing_rad * (cos1 + 2 * h2 * cos2q) * swing_rate
        pitch_acc = -swing_rad * (sin1 + 4 * h2 * sin2q) * swing_rate ** 2
        sin_lat, cos_lat = _shifted(sin1, cos1, traits["lat_phase"])
        roll = roll + limb.roll_rad * sin_lat
        roll_rate = roll_rate + limb.roll_rad * cos_lat * swing_rate
        cos_yaw = _shifted(sin1, cos1, traits["fwd_phase"])[1]
        yaw_rate = yaw_rate + limb.yaw_rad * cos_yaw * swing_rate
        if sensor == "acc" and not gait.pedalling:
            impact = session.impact_m_s2 * limb.impact_gain
            sin_step, cos_step = sin2, cos2                   # step phase = 2 * stride phase
            step = _pulse(cos_step, session.sharpness)
            step *= 1.0 + traits["asym"] * _shifted(sin1, cos1, traits["asym_phase"])[1]
            harmonics = ((sin_step, cos_step),
                         (2 * sin_step * cos_step, 2 * cos_step ** 2 - 1),
                         (sin_step * (3 - 4 * sin_step ** 2), cos_step * (4 * cos_step ** 2 - 3)))
            for (sin_h, cos_h), ratio, shift in zip(harmonics, traits["harm_ratio"],
                                                    traits["harm_phase"]):
                step += ratio * _shifted(sin_h, cos_h, shift)[1]
            braking = _pulse(_shifted(sin_step, cos_step, -0.5)[1], session.sharpness)
            body[:, 2] += impact * step
            body[:, 1] += impact * gait.fwd_ratio * (
                _shifted(sin_step, cos_step, traits["fwd_phase"])[0] + 0.4 * braking)
            body[:, 0] += impact * gait.lat_ratio * sin_lat
    if sensor == "gyro":
        return np.stack([pitch_rate, roll_rate, yaw_rate], axis=1)
    # Heading frame -> segment frame: undo the pitch (about x), then the roll (about y).
    cp, sp, cr, sr = np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    y1 = cp * body[:, 1] + sp * body[:, 2]
    z1 = -sp * body[:, 1] + cp * body[:, 2]
    return np.stack([cr * body[:, 0] - sr * z1,
                     y1 + limb.radius_m * pitch_acc,            # tangential
                     sr * body[:, 0] + cr * z1 + limb.radius_m * pitch_rate ** 2], axis=1)


# --- clocks --------------------------------------------------------------------------------

def _gaps(rng: np.random.Generator, duration_s: float, n_gaps: int,
          max_gap_s: float) -> np.ndarray:
    """(n_gaps, 2) [start, end) seconds of the gaps, inside the middle 80% of the recording."""
    length = rng.uniform(max_gap_s / 4, max_gap_s, size=n_gaps)
    start = rng.uniform(0.1 * duration_s, 0.9 * duration_s - length)
    return np.stack([start, start + length], axis=1)


def _sample_times(rng: np.random.Generator, first_s: float, duration_s: float, rate_hz: float,
                  jitter: float, drop_prob: float, gaps: np.ndarray) -> np.ndarray:
    """(n,) strictly increasing sample times in [first_s, duration_s): jitter, drops, gaps."""
    period_s = 1.0 / rate_hz
    n = int(np.ceil((duration_s - first_s) * rate_hz * 1.2)) + 64
    steps = period_s * np.maximum(1.0 + jitter * rng.standard_normal(n), 0.2)
    t_s = first_s + np.concatenate([[0.0], np.cumsum(steps[:-1])])
    keep = (t_s < duration_s) & (rng.random(n) >= drop_prob)
    for start, end in gaps:
        keep &= (t_s < start) | (t_s >= end)
    return t_s[keep]
