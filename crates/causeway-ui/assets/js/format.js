// Numbers, times and durations for people.

/** `2026-12-02 04:16:23` in the browser's time zone, or an em dash. */
export function time(ms) {
  if (ms === null || ms === undefined || ms === '') return '—';
  const date = new Date(Number(ms));
  if (Number.isNaN(date.getTime())) return '—';
  const pad = (value) => String(value).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

/** `3.2 s`, `4 min 10 s`, `2 h 5 min`, `3 d 4 h`. */
export function duration(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(Number(ms))) return '—';
  const seconds = Math.max(0, Number(ms)) / 1000;
  if (seconds < 60) return `${seconds < 10 ? seconds.toFixed(1) : Math.round(seconds)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.round(seconds % 60)} s`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return `${hours} h ${minutes % 60} min`;
  return `${Math.floor(hours / 24)} d ${hours % 24} h`;
}

/** `3 min ago` relative to `now`. */
export function ago(ms, now = Date.now()) {
  if (ms === null || ms === undefined) return '—';
  const difference = now - Number(ms);
  return difference >= 0 ? `${duration(difference)} ago` : `in ${duration(-difference)}`;
}

/** A metric value with four significant digits; integers as they are. */
export function number(value) {
  if (value === null || value === undefined || value === '') return '—';
  const numeric = Number(value);
  if (!Number.isFinite(numeric)) return String(value);
  if (Number.isInteger(numeric) && Math.abs(numeric) < 1e15) return numeric.toLocaleString('en-US');
  const magnitude = Math.abs(numeric);
  if (magnitude !== 0 && (magnitude < 1e-3 || magnitude >= 1e6)) return numeric.toExponential(3);
  return String(Number(numeric.toPrecision(4)));
}

/** A share as a percentage. */
export function percent(value) {
  return value === null || value === undefined ? '—' : `${(Number(value) * 100).toFixed(1)}%`;
}
