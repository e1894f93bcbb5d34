import { describe, expect, it } from 'vitest';
import { CaptureAccounting, CaptureBudget } from './capture-budget.ts';

describe('CaptureBudget', () => {
  it('refuses a capture past the session count and bytes past the session budget, and gives everything back on close', () => {
    const accounting = new CaptureAccounting();
    const budget = new CaptureBudget({ sessionBytes: 100, sessionCaptures: 2 }, accounting);
    const a = budget.open();
    const b = budget.open();
    expect(a).not.toBeNull();
    expect(b).not.toBeNull();
    expect(budget.open()).toBeNull();
    expect(a?.reserve(60)).toBe(true);
    expect(b?.reserve(50)).toBe(false);
    expect(b?.reserve(40)).toBe(true);
    expect(accounting.stats()).toEqual({ heldBytes: 100, captures: 2, peakHeldBytes: 100, refused: 2 });
    a?.release(30);
    expect(accounting.stats().heldBytes).toBe(70);
    a?.close();
    a?.close();
    expect(accounting.stats()).toMatchObject({ heldBytes: 40, captures: 1 });
    expect(a?.reserve(1)).toBe(false);
    expect(budget.open()).not.toBeNull();
  });

  it('keeps sessions apart while counting them together', () => {
    const accounting = new CaptureAccounting();
    const one = new CaptureBudget({ sessionBytes: 10, sessionCaptures: 1 }, accounting);
    const two = new CaptureBudget({ sessionBytes: 10, sessionCaptures: 1 }, accounting);
    expect(one.open()?.reserve(10)).toBe(true);
    expect(two.open()?.reserve(10)).toBe(true);
    expect(accounting.stats()).toMatchObject({ heldBytes: 20, captures: 2 });
  });
});
