/** Pieces the pages share: a bar chart drawn in SVG, decision badges, notes. */
import type { ComponentChildren } from 'preact';
import { useEffect, useRef } from 'preact/hooks';
import { ApiFailure } from './api.ts';
import { DECISION_LABEL, type DecisionState } from './format.ts';

export function BarChart({ values, labels, title, unit }: { values: number[]; labels: [string, string]; title: string; unit: string }) {
  const width = 600;
  const height = 120;
  const max = Math.max(1, ...values);
  const step = width / Math.max(1, values.length);
  const total = values.reduce((a, b) => a + b, 0);
  return (
    <figure class="chart">
      <svg viewBox={`0 0 ${width} ${height}`} role="img" aria-label={`${title}: ${total} ${unit} in all, at most ${max} in one interval`} preserveAspectRatio="none">
        {values.map((value, i) => {
          const h = (value / max) * (height - 4);
          return (
            <rect key={i} x={i * step + 1} y={height - h} width={Math.max(1, step - 2)} height={h} class="bar">
              <title>{`${value} ${unit}`}</title>
            </rect>
          );
        })}
      </svg>
      <figcaption>
        <span>{labels[0]}</span>
        <span>{title}</span>
        <span>{labels[1]}</span>
      </figcaption>
    </figure>
  );
}

export const DecisionBadge = ({ state }: { state: DecisionState }) => <span class={`badge ${state}`}>{DECISION_LABEL[state]}</span>;

export const OutcomeBadge = ({ outcome }: { outcome: string }) => <span class={`badge outcome-${outcome}`}>{outcome}</span>;

export function ErrorNote({ error }: { error: unknown }) {
  if (error === null || error === undefined) return null;
  const text = error instanceof ApiFailure ? `${error.message} (${error.code})` : error instanceof Error ? error.message : JSON.stringify(error);
  return (
    <p class="error" role="alert">
      {text}
    </p>
  );
}

/** A page's heading, focused when the page opens so keyboard and screen-reader users start there. */
export function PageTitle({ children }: { children: ComponentChildren }) {
  const ref = useRef<HTMLHeadingElement>(null);
  useEffect(() => ref.current?.focus(), []);
  return (
    <h1 tabIndex={-1} ref={ref}>
      {children}
    </h1>
  );
}
