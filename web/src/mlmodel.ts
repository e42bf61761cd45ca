// An MLflow model folder's MLmodel file (YAML, parsed with `yaml`: its own
// chunk, loaded with the first model shown), read into what the page shows:
// flavors, the signature's columns or tensors, and where the input example
// lies.
import { parse } from "yaml";

export type SpecRow = { name: string; type: string; detail: string };
export type MlModel = {
  flavors: { name: string; details: [string, string][] }[];
  inputs: SpecRow[] | null;
  outputs: SpecRow[] | null;
  params: SpecRow[] | null;
  /** The input example's path inside the model folder. */
  example: string | null;
  facts: [string, string][];
};

function str(v: unknown): string {
  if (v === null || v === undefined) return "";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

/** A signature part: MLflow writes it as a JSON string inside the YAML. */
function specRows(v: unknown): SpecRow[] | null {
  if (v === null || v === undefined || v === "") return null;
  let list: unknown = v;
  if (typeof v === "string") {
    try {
      list = JSON.parse(v);
    } catch {
      return [{ name: "", type: "unreadable", detail: v.slice(0, 200) }];
    }
  }
  if (!Array.isArray(list)) return null;
  return list.map((e: unknown, i) => {
    const o = (e && typeof e === "object" ? e : {}) as Record<string, unknown>;
    const tensor = o["tensor-spec"] as { dtype?: unknown; shape?: unknown } | undefined;
    const type = tensor ? `tensor ${str(tensor.dtype)}` : str(o.type);
    const detail = tensor
      ? `shape ${JSON.stringify(tensor.shape ?? null)}`
      : [o.required === false ? "optional" : "", o.default !== undefined ? `default ${str(o.default)}` : "", o.shape ? `shape ${JSON.stringify(o.shape)}` : ""]
          .filter(Boolean)
          .join(", ");
    return { name: o.name === undefined ? (list.length > 1 ? `[${i}]` : "") : str(o.name), type, detail };
  });
}

export function readMlModel(text: string): MlModel {
  const doc = parse(text) as unknown;
  if (!doc || typeof doc !== "object" || Array.isArray(doc)) throw new Error("MLmodel is not a YAML mapping");
  const d = doc as Record<string, unknown>;
  const flavors = Object.entries((d.flavors && typeof d.flavors === "object" ? d.flavors : {}) as Record<string, unknown>).map(([name, f]) => ({
    name,
    details: Object.entries((f && typeof f === "object" ? f : {}) as Record<string, unknown>)
      .filter(([, v]) => v !== null && v !== undefined && typeof v !== "object")
      .map(([k, v]): [string, string] => [k, str(v)]),
  }));
  const sig = (d.signature && typeof d.signature === "object" ? d.signature : {}) as Record<string, unknown>;
  const info = (d.saved_input_example_info && typeof d.saved_input_example_info === "object" ? d.saved_input_example_info : null) as Record<string, unknown> | null;
  const facts: [string, string][] = [];
  for (const [k, label] of [
    ["mlflow_version", "MLflow"],
    ["model_size_bytes", "Size"],
    ["utc_time_created", "Created (UTC)"],
    ["run_id", "Run"],
    ["model_id", "Model id"],
  ] as const) {
    if (d[k] !== undefined && d[k] !== null) facts.push([label, str(d[k])]);
  }
  return {
    flavors,
    inputs: specRows(sig.inputs),
    outputs: specRows(sig.outputs),
    params: specRows(sig.params),
    example: info && typeof info.artifact_path === "string" ? info.artifact_path : null,
    facts,
  };
}
