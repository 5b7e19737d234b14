// The original app's own UI components (not part of the WebSocket surface), reduced to
// what its pages render.
import type { ReactNode } from "react";

export function Badge({ children }: { children?: ReactNode }) {
  return <span className="badge">{children}</span>;
}

export function ExecutionCard({ execution }: { execution: { execution_id: string; status: string } }) {
  return (
    <div className="execution-card" data-execution={execution.execution_id}>
      {execution.execution_id}: {execution.status}
    </div>
  );
}
