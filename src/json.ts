// Reading JSON nobody vouches for (engine answers, request bodies): whether a value is an
// object, and a field's value when it has the expected type.

export type JsonObject = Record<string, unknown>;

export function isJsonObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

// The field when it is a finite number, else null.
export function finiteNumber(o: JsonObject, key: string): number | null {
  const v = o[key];
  return typeof v === 'number' && Number.isFinite(v) ? v : null;
}
